"""A TFaaS-compatible inference service of dodas's own (issue 17, sections 1-2).

TFaaS (CMS's TensorFlow as a Service) is a Go server; dodas serves the same HTTP
API and formats from Python so existing TFaaS clients and curl recipes work,
with safety a network service needs: authenticated, size-limited uploads, safe
tarball unpacking, no pickle-based model formats, atomic model replacement.
TensorFlow is imported only when a TensorFlow model is loaded (it takes seconds).
"""
