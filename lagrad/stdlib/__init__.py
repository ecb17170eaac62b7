"""The standard library: importing this package registers every primitive."""
from . import arith, structure, construction, reductions, elementwise, linalg  # noqa: F401
from . import qr  # noqa: F401,E402  (QR: reduced, any shape)
from . import lyap  # noqa: F401,E402  (lyap, dlyap)
from . import expm  # noqa: F401,E402  (expm, expm_frechet)
from . import krylov  # noqa: F401,E402  (cg, gmres on matrix-free operators)
from . import arnoldi  # noqa: F401,E402  (arnoldi, unrolled)
from . import blr  # noqa: F401,E402  (block low-rank: blr_apply, blr_dense, blr_compress, block_diag_inv)
from . import blr_ops  # noqa: F401,E402  (blr(D, U, V) operators, dense, block_jacobi)
