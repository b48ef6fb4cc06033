"""Reading the files a dataset comes in, for the preprocess stage: :mod:`.load` picks the reader
by format: idx (MNIST, Fashion-MNIST: :mod:`.idx`), the CIFAR-10 binary archive (:mod:`.cifar`)
or a user's image folder (:mod:`.image_folder`, over :mod:`.archive`, :mod:`.image_decode` and
:mod:`.image_modes`), each within the memory bounds of :mod:`numpynet.data.read_limits`, into a
:mod:`.raw_dataset`.
"""
