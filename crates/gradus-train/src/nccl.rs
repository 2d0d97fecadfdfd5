//! The [`Collective`] of GPU ranks: NCCL all-reduce through candle's cudarc, one
//! communicator per process. Rank 0 creates the NCCL unique id and publishes it in the
//! file `gradus-launch` names; the other ranks read it from there.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, CustomOp1, Device, Layout, Shape, Tensor};
use cudarc::nccl::safe::{Comm, Id, ReduceOp};

use crate::dist::{Collective, RankShards, wait_for_file};
use crate::error::{Result, TrainError};

/// How long a rank waits for rank 0's id.
const ID_TIMEOUT: Duration = Duration::from_secs(300);

/// A communicator that may move between threads. NCCL allows a communicator to be used
/// from any thread as long as calls on it do not overlap; the trainer makes every call
/// from its one training thread.
struct SharedComm(Comm);

// SAFETY: see above; the communicator is only ever used by one thread at a time.
#[allow(unsafe_code)]
unsafe impl Send for SharedComm {}
// SAFETY: the trainer never calls it from two threads at once.
#[allow(unsafe_code)]
unsafe impl Sync for SharedComm {}

/// Data-parallel sums over the GPUs of all ranks.
pub struct NcclCollective {
    comm: Arc<SharedComm>,
    ranks: RankShards,
}

impl std::fmt::Debug for NcclCollective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NcclCollective")
            .field("ranks", &self.ranks)
            .finish()
    }
}

fn nccl_err(what: &str, e: impl std::fmt::Debug) -> TrainError {
    TrainError::Config(format!("NCCL {what}: {e:?}"))
}

impl NcclCollective {
    /// Joins the group of `ranks.world` processes on `device` (a CUDA device), meeting
    /// through `id_file`.
    pub fn connect(device: &Device, ranks: RankShards, id_file: &Path) -> Result<Self> {
        let Device::Cuda(cuda) = device else {
            return Err(TrainError::Config(
                "data-parallel training with NCCL needs a CUDA device (device = \"cuda\")".into(),
            ));
        };
        let id = if ranks.rank == 0 {
            let id = Id::new().map_err(|e| nccl_err("unique id", e))?;
            let bytes: Vec<u8> = id.internal().iter().map(|&c| c as u8).collect();
            let tmp = id_file.with_extension("tmp");
            std::fs::write(&tmp, &bytes).map_err(|e| TrainError::file(&tmp, e))?;
            std::fs::rename(&tmp, id_file).map_err(|e| TrainError::file(id_file, e))?;
            id
        } else {
            let bytes = wait_for_file(id_file, ID_TIMEOUT)?;
            let internal: [std::ffi::c_char; 128] = bytes
                .iter()
                .map(|&b| b as std::ffi::c_char)
                .collect::<Vec<_>>()
                .try_into()
                .map_err(|_| {
                    TrainError::Config(format!("{}: not an NCCL id", id_file.display()))
                })?;
            Id::uninit(internal)
        };
        let comm = Comm::from_rank(cuda.cuda_stream(), ranks.rank, ranks.world, id)
            .map_err(|e| nccl_err("communicator", e))?;
        Ok(Self {
            comm: Arc::new(SharedComm(comm)),
            ranks,
        })
    }
}

impl Collective for NcclCollective {
    fn ranks(&self) -> RankShards {
        self.ranks
    }

    fn sum(&self, t: &Tensor) -> Result<Tensor> {
        let op = AllReduce {
            comm: self.comm.clone(),
        };
        Ok(t.contiguous()?.apply_op1_no_bwd(&op)?)
    }
}

/// `all_reduce(Sum)` as a candle op, so that the result is an ordinary tensor.
struct AllReduce {
    comm: Arc<SharedComm>,
}

impl CustomOp1 for AllReduce {
    fn name(&self) -> &'static str {
        "nccl-all-reduce"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        candle_core::bail!("NCCL all-reduce runs on CUDA tensors only")
    }

    fn cuda_fwd(
        &self,
        storage: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let n = layout.shape().elem_count();
        let src = storage.as_cuda_slice::<f32>()?;
        let src = match layout.contiguous_offsets() {
            Some((start, end)) if end - start == n => src.slice(start..end),
            _ => candle_core::bail!("NCCL all-reduce needs a contiguous tensor"),
        };
        let device = storage.device().clone();
        let mut dst = device.alloc_zeros::<f32>(n)?;
        self.comm
            .0
            .all_reduce(&src, &mut dst, &ReduceOp::Sum)
            .map_err(|e| candle_core::Error::Msg(format!("NCCL all-reduce: {e:?}")))?;
        Ok((
            CudaStorage::wrap_cuda_slice(dst, device),
            layout.shape().clone(),
        ))
    }
}
