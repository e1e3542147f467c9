"""k-NN's responses: ``predicted_label``, plus the neighbours' ``distances`` and ``labels`` when the Accept
header says ``verbose=true`` (any case, spaces allowed: ``application/json; Verbose = True``)."""

VERBOSE_COLUMNS = ("distances", "labels")


def selected(columns, media):
    if media is not None and media.flag("verbose"):
        return columns
    return {name: value for name, value in columns.items() if name not in VERBOSE_COLUMNS}


def verbose_aware(encoder):
    """An encoder that drops the verbose columns unless the Accept media range asks for them."""

    def encode(columns, media):
        return encoder(selected(columns, media), media)

    return encode
