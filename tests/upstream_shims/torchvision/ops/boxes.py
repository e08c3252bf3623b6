def batched_nms(*args, **kwargs):
    raise NotImplementedError("not needed by the conformance tests")


def box_area(*args, **kwargs):
    raise NotImplementedError("not needed by the conformance tests")
