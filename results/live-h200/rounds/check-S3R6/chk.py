import sys, torch
sys.path.insert(0, ".")
import old_skinny_gemm as O, old_pdl_kernels as OP
from bulletsim.gpu import skinny_gemm as N, pdl_kernels as NP
torch.manual_seed(0)
ok = True
for (n, k) in ((6144, 4096), (4096, 14336)):
    x = torch.randn(64, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) / k**0.5
    ref = (x.float() @ w.float().t())
    for split in (1, 4):
        for old, new in ((O.SkinnyGemm(64, 128, split), N.SkinnyGemm(64, 128, split)),
                         (OP.SkinnyGemmPdl(64, 128, split), NP.SkinnyGemmPdl(64, 128, split))):
            a = old(x, w, torch.empty(64, n, device="cuda", dtype=torch.bfloat16))
            b = new(x, w, torch.empty(64, n, device="cuda", dtype=torch.bfloat16))
            torch.cuda.synchronize()
            eq = torch.equal(a, b)
            err = float((b.float() - ref).norm() / ref.norm())
            ok &= eq and err < 2e-2
            print(type(new).__name__, n, k, split, "bit-equal to old:", eq, "rel err", round(err, 5))
print("ALL OK" if ok else "MISMATCH")
