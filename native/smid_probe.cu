// SM-occupancy probe: which SMs did a launch on a given stream really use?
//
// Each block records the %smid it ran on. Blocks nanosleep so that every SM the partition
// owns receives some before the grid drains; the caller unions the ids. Built into a small
// shared library (see Makefile) that calibrate/probe.py loads with ctypes.
#include <cuda_runtime.h>
#include <stdint.h>

__device__ __forceinline__ unsigned int read_smid() {
    unsigned int id;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
    return id;
}

__device__ __forceinline__ unsigned int read_nsmid() {
    unsigned int n;
    asm volatile("mov.u32 %0, %%nsmid;" : "=r"(n));
    return n;
}

__global__ void smid_probe_kernel(int *out, unsigned int sleep_ns) {
    if (threadIdx.x == 0) {
        __nanosleep(sleep_ns);
        out[blockIdx.x] = (int)read_smid();
    }
}

__global__ void nsmid_kernel(int *out) { out[0] = (int)read_nsmid(); }

extern "C" {

// Launch `num_blocks` probe blocks on `stream`, writing one SM id per block to device
// memory `out`. Returns the cudaError_t of the launch (0 = success).
int bulletsim_smid_probe(uintptr_t stream, int *out, int num_blocks, unsigned int sleep_ns) {
    smid_probe_kernel<<<num_blocks, 32, 0, (cudaStream_t)stream>>>(out, sleep_ns);
    return (int)cudaGetLastError();
}

// Upper bound of %smid values (SM ids are not always dense on floorswept parts).
int bulletsim_nsmid(uintptr_t stream, int *out) {
    nsmid_kernel<<<1, 1, 0, (cudaStream_t)stream>>>(out);
    return (int)cudaGetLastError();
}

int bulletsim_native_version(void) { return 1; }
}
