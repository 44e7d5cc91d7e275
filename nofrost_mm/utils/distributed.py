"""Process-group clean-up shared by the command-line tools."""
import torch.distributed as dist


def shutdown_distributed() -> None:
    """Wait for every rank, then destroy the process group.

    A process that exits with a live gloo group can abort at interpreter exit
    ("terminate called without an active exception"), failing a run that
    finished; tools call this once their work is done.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
