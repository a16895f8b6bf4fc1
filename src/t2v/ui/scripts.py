"""The page's own browser code and style: the delete confirmation, the key cookie, and the CSS."""

from t2v.ui.uploads import KEY_COOKIE

CSS = """
.t2v-progress { display: flex; align-items: center; gap: 0.75em; }
.t2v-progress progress { flex: 1; height: 1.1em; }
.t2v-error { color: #b91c1c; font-weight: 600; }
#t2v-preview img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }
/* the result players' controls stay in view (Gradio shows them only on hover) */
#t2v-video .controls, #t2v-compare-a .controls, #t2v-compare-b .controls { opacity: 1 !important; visibility: visible !important; }
/* history captions whole, wrapped over the tile's lower part, not cut with an ellipsis */
#t2v-history .caption-label { white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  max-width: calc(100% - 8px) !important; line-height: 1.2; opacity: 0.85 !important; }
"""

# Delete asks first; declined, the handler gets no job id and deletes nothing.
CONFIRM_DELETE_JS = """(jid, key, query) => [jid && confirm("Delete job " + jid + " and its files?") ? jid : "", key, query]"""

KEY_COOKIE_JS = f"""(key, query) => {{
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = "{KEY_COOKIE}=" + encodeURIComponent(key || "") + "; path=/; SameSite=Strict" + secure +
                      (key ? "" : "; Max-Age=0");
    return [key, query];
}}"""
