"""KServe's InferenceRESTClient and Triton's tritonclient.http as a user runs them: each with its
default settings (binary tensors) or in JSON mode; every call answers {output name: ndarray}."""

import asyncio

import numpy as np
import pytest

CLIENTS = ("tritonclient", "kserve")
MODES = ("binary", "json")


def _need(module: str):
    return pytest.importorskip(module, reason=f"{module} is not installed (pip install tritonclient[http] kserve)")


def triton_infer(url: str, model: str, X: np.ndarray, outputs: list[str], mode: str) -> dict:
    httpclient = _need("tritonclient.http")
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("input-0", list(X.shape), "FP64")
        if mode == "binary":
            tensor.set_data_from_numpy(X)  # the default: raw bytes, and binary outputs
            result = client.infer(model, [tensor])
        else:
            tensor.set_data_from_numpy(X, binary_data=False)
            result = client.infer(model, [tensor], outputs=[httpclient.InferRequestedOutput(name, binary_data=False)
                                                            for name in outputs])
        return {name: result.as_numpy(name) for name in outputs}
    finally:
        client.close()


def kserve_infer(url: str, model: str, X: np.ndarray, outputs: list[str], mode: str) -> dict:
    _need("kserve")
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig
    from kserve.protocol.infer_type import RequestedOutput

    async def call():
        client = InferenceRESTClient(RESTConfig(protocol="v2"))
        tensor = InferInput("input-0", list(X.shape), "FP64")
        binary = mode == "binary"
        tensor.set_data_from_numpy(X, binary_data=binary)
        requested = [RequestedOutput(name, parameters={"binary_data": binary}) for name in outputs]
        request = InferRequest(model, [tensor], request_outputs=requested)
        try:
            response = await client.infer(url, request, model_name=model)
        finally:
            await client._client.aclose()
        return {o.name: o.as_numpy() for o in response.outputs}

    return asyncio.run(call())


INFER = {"tritonclient": triton_infer, "kserve": kserve_infer}
