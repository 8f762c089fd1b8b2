"""keras.callbacks"""
from ..callbacks import *  # noqa: F401,F403
from ..callbacks import Callback, EarlyStopping, History, ProgbarLogger  # noqa: F401
