"""Resolving the names Keras users pass as strings ('adam', 'relu', 'categorical_crossentropy')."""


def resolve_name(what, identifier, known, keras_others):
    """The key of `known` matching `identifier` (case-insensitive). A name Keras has but cnnfast
    does not implement raises NotImplementedError; any other name raises ValueError. Both list
    what is supported."""
    key = identifier.lower()
    if key in known:
        return key
    supported = sorted(known)
    if key in keras_others:
        raise NotImplementedError(f"{what} {identifier!r} is not implemented by cnnfast; "
                                  f"supported: {supported}")
    raise ValueError(f"Unknown {what} {identifier!r}; supported: {supported}")
