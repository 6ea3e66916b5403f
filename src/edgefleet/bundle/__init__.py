"""Model bundles and their TUF supply chain.

Modules, one concept each (import the one you need; nothing heavy loads here)::

    manifest    bundle.json: pydantic models, canonical bytes, JSON Schema
    build       reproducible bundle tars (reads ONNX signatures through ``signature``, onnx on use)
    unpack      safe, single-pass verification and unpacking of a bundle tar
    store       the content-addressed, atomically written store on a device
    keys        the offline keys directory: ed25519 keys, root versions, rotation
    repository  the TUF repository the control plane serves (Repository)
    client      the device side on tuf.ngclient (BundleClient); imports no numpy/onnx
    errors      every rejection code (CODES)
"""

__all__: list[str] = []
