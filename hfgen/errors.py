"""Exceptions that hfgen raises for bad input; the command line prints them as one line and exits with code 2."""


class HfgenError(Exception):
    """Base class of every error hfgen raises on purpose. Its message names the problem and the fix."""


class DatasetError(HfgenError, ValueError):
    """A data source is missing, empty, unreadable or has the wrong shape."""


class CheckpointError(HfgenError):
    """A checkpoint or output folder is missing, incomplete or corrupt."""


class TrainingDivergedError(HfgenError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


class UnknownNameError(HfgenError, ValueError):
    """An unknown model, scheduler or metric name; the message lists the valid ones."""


class ConfigurationError(HfgenError, ValueError):
    """Arguments that do not fit together (e.g. a resolution the UNet cannot halve)."""


class ImageShapeError(HfgenError, ValueError):
    """Images given to a model or pipeline have the wrong shape, size or number of channels."""


class UnsupportedOperationError(HfgenError):
    """The model cannot do what was asked (e.g. sampling from an autoencoder, which has no prior)."""


class FolderInUseError(HfgenError):
    """Another hfgen run holds the output folder's lock (``.hfgen.lock``); the message names its PID."""


class UnknownArgumentError(HfgenError, TypeError):
    """A keyword argument that no flag of the command has (e.g. ``hfgen.train("ddpm", learning_rat=1e-3)``)."""


class CommandLineError(HfgenError):
    """A usage error found by the command line itself (an unknown command, a flag out of range); printed as one line,
    exit code 2."""


class NotEnoughSamplesError(HfgenError, ValueError):
    """Too few images for a metric (FID, KID, PRDC, CMMD); the message says how many are needed."""
