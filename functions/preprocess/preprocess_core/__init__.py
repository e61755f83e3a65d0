"""Pure core of the preprocess function (see ../README.md)."""
