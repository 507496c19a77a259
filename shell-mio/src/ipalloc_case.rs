//! Runs the IP allocator offline on a case file (`pharos ipalloc FILE`). Being written for issue 4.
