"""The project's stages. Importing this package pins the CPU kernels every stage runs with.

torch picks its vectorised kernels (ATen), oneDNN its convolutions and MKL its BLAS paths from the
CPU it finds, so two x86-64 machines can round differently and write different bytes. Every stage
and test imports this package before torch, and pins the common AVX2 level for all three; MKL's
conditional numerical reproducibility mode (MKL_CBWR) also stops MKL from choosing code paths by CPU
model. Other processors (arm64) ignore these variables.
"""

import os
import platform

if platform.machine().lower() in ("x86_64", "amd64"):
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    os.environ["MKL_CBWR"] = "AVX2"
