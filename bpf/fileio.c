/* File I/O statistics: read/write calls and bytes per (cgroup, process, fd),
 * aggregated in the kernel from the syscall exit tracepoints of read, write,
 * pread64, pwrite64, readv and writev; flushed each interval like syscall
 * counts (two double-buffered map pairs, selector fio_ctl[0]).
 *
 * The fd is stashed at entry; at exit the file's inode is found through
 * task->files and is part of the key, so an fd reused for another file (or
 * kept across exec) is counted apart, and user space can tell whether the fd
 * still names the same file when it resolves the path through /proc. The
 * inode number alone cannot tell: runc's exec fifo (fd 3 of the container's
 * init, closed by its exec) and the workload's first file, created right after
 * the fifo is unlinked, got the same number; so each key also keeps the
 * task's exec generation, and only keys of the pid's latest program are
 * resolved.
 * Overhead: a stash, five kernel reads and a per-CPU hash update per
 * read/write on the host.
 */
#include "events.h"

#define FIO_MAX_KEYS 16384
#define FIO_MAX_PROCS 8192

struct fio_stash {
    s32 fd;
    u32 write;
};

BPF_ARRAY(fio_ctl, u32, 1);
BPF_HASH(fio_pending, u32, struct fio_stash, 8192);
BPF_PERCPU_HASH(fio_stats0, struct fio_key, struct fio_val, FIO_MAX_KEYS);
BPF_PERCPU_HASH(fio_stats1, struct fio_key, struct fio_val, FIO_MAX_KEYS);
BPF_HASH(fio_procs0, u32, struct sc_proc, FIO_MAX_PROCS);
BPF_HASH(fio_procs1, u32, struct sc_proc, FIO_MAX_PROCS);

static __always_inline int fio_enter(s64 fd, u32 write)
{
    if (fd < 0 || is_self() || group_off(GRP_FILEIO))
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct fio_stash s = {.fd = (s32)fd, .write = write};
    fio_pending.update(&tid, &s);
    return 0;
}

/* the struct inode behind an fd of the current task (0 when out of range) */
static __always_inline u64 fd_inode(s32 fd)
{
    u64 fdt = rd_u64(rd_u64(bpf_get_current_task(), OFF_TASK_FILES), OFF_FILES_FDT);
    u32 max = rd_u32(fdt, OFF_FDT_MAX_FDS);
    if ((u32)fd >= max)
        return 0;
    u64 file = rd_u64(rd_u64(fdt, OFF_FDT_FD), (u64)fd * 8);
    return rd_u64(file, OFF_FILE_F_INODE);
}

static __always_inline int fio_exit(long ret)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 tid = (u32)pt;
    struct fio_stash *sp = fio_pending.lookup(&tid);
    if (!sp)
        return 0;
    struct fio_stash s = *sp;
    fio_pending.delete(&tid);
    if (group_off(GRP_FILEIO))
        return 0; /* switched off while the call ran: nothing after the switch */
    struct fio_key k = {};
    k.cgroup_id = bpf_get_current_cgroup_id();
    k.pid = pt >> 32;
    k.fd = s.fd;
    k.inode = fd_inode(s.fd);
    u64 bytes = ret > 0 ? (u64)ret : 0;
    u64 gen = rd_u64(bpf_get_current_task(), OFF_TASK_SELF_EXEC_ID);
    u32 zero = 0;
    u32 *selp = fio_ctl.lookup(&zero);
    u32 sel = selp ? *selp : 0;
    struct fio_val *v = sel ? fio_stats1.lookup(&k) : fio_stats0.lookup(&k);
    if (v) {
        v->exec_gen = gen;
        if (s.write) {
            v->writes++;
            v->write_bytes += bytes;
        } else {
            v->reads++;
            v->read_bytes += bytes;
        }
        return 0;
    }
    struct fio_val nv = {.ino = rd_u64(k.inode, OFF_INODE_I_INO), .exec_gen = gen};
    if (s.write) {
        nv.writes = 1;
        nv.write_bytes = bytes;
    } else {
        nv.reads = 1;
        nv.read_bytes = bytes;
    }
    int err = sel ? fio_stats1.update(&k, &nv) : fio_stats0.update(&k, &nv);
    if (err) {
        drops.atomic_increment(EV_SYSCALL_COUNTS);
        return 0;
    }
    struct sc_proc p = {};
    p.cgroup_id = k.cgroup_id;
    p.start_ns = rd_u64(rd_u64(bpf_get_current_task(), OFF_TASK_GROUP_LEADER), OFF_TASK_START_BOOTTIME);
    bpf_get_current_comm(p.comm, sizeof(p.comm));
    u32 pid = k.pid;
    if (sel) /* the latest name: a process may have exec'd since its first I/O */
        fio_procs1.update(&pid, &p);
    else
        fio_procs0.update(&pid, &p);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_read) { return fio_enter(args->fd, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_read) { return fio_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_write) { return fio_enter(args->fd, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_write) { return fio_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_pread64) { return fio_enter(args->fd, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_pread64) { return fio_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_pwrite64) { return fio_enter(args->fd, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_pwrite64) { return fio_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_readv) { return fio_enter(args->fd, 0); }
TRACEPOINT_PROBE(syscalls, sys_exit_readv) { return fio_exit(args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_writev) { return fio_enter(args->fd, 1); }
TRACEPOINT_PROBE(syscalls, sys_exit_writev) { return fio_exit(args->ret); }
