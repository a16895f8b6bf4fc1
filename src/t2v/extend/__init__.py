"""Longer videos: ``seconds``, a prompt schedule, or ``extend`` (continue a clip), made in segments joined at
blended seams, each segment checkpointed (:mod:`t2v.extend.plan`, :mod:`t2v.extend.run`)."""
