"""Planning a run before anything loads: memory plans from dry runs on the meta device (:mod:`.memory`,
:mod:`.dryruns`), the memory budget (:mod:`.fit`) and learned step times (:mod:`.steptime`)."""
