# components of this folder are imported here (one file each), which registers them
