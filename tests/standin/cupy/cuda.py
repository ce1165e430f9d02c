"""``cupy.cuda`` of the stand-in: one pretend device, synchronous streams, a runtime
whose device name says plainly that it is not a GPU."""


class Device:
    def __init__(self, device=None):
        self.id = 0 if device is None else int(device)

    def synchronize(self):
        pass

    def use(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    compute_capability = "standin"


class Stream:
    null = None

    def __init__(self, null=False, non_blocking=False, ptds=False):
        pass

    def synchronize(self):
        pass

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


Stream.null = Stream(null=True)


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        pass

    def record(self, stream=None):
        pass

    def synchronize(self):
        pass


def get_elapsed_time(start, end):
    raise RuntimeError("the CuPy stand-in has no GPU clock: time on a real GPU")


class _Runtime:
    """``cupy.cuda.runtime``: the device count, and properties naming the stand-in."""

    CUDARuntimeError = RuntimeError

    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(device):
        return {"name": b"minivae CPU stand-in for CuPy (not a GPU)", "totalGlobalMem": 0,
                "major": 0, "minor": 0}

    @staticmethod
    def deviceSynchronize():
        pass

    @staticmethod
    def runtimeGetVersion():
        return 0


runtime = _Runtime()
