"""The training core: the loop (:mod:`.loop`), one step (:mod:`.step`), the wrappers that
compile it or replay it as a CUDA graph with the same call (:mod:`.compiled`,
:mod:`.cuda_graph`), the loss window read back at log steps (:mod:`.loss_window`), the
checkpointed state (:mod:`.state`) and Ctrl-C handling (:mod:`.interrupt`)."""
