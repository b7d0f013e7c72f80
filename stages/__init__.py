"""The project's stages. Importing this package pins the CPU kernels every stage runs with.

torch picks its vectorised kernels (ATen), oneDNN its convolutions and MKL its BLAS and vector-maths paths
from the CPU it finds, so two x86-64 machines can round differently and write different bytes. Every stage
and test imports this package before torch, and pins the common AVX2 level for ATen and oneDNN. MKL is
pinned to its COMPATIBLE mode (MKL_CBWR): the one mode in which MKL takes the same code path on Intel and
AMD processors (in any other mode it chooses by vendor, whatever the pin says). `common.kernels: fast`
switches a stage to MKL's AVX2 path before its first MKL call (`stages.common.runtime.set_kernels`).
Other processors (arm64) ignore these variables.
"""

import os
import platform

if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    os.environ["MKL_CBWR"] = "COMPATIBLE"
