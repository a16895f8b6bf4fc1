"""Image mode: text-to-image frames made coherent and compiled into a video (t2v sequence), and t2v image."""
