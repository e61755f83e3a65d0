"""The results function's core: queries over the result index, documents, the gallery page, the API description."""
