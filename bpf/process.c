/* Process lifecycle: exec and execveat (with argv and the exec's result),
 * fork/clone of new processes (threads are skipped), process exit.
 *
 * A successful exec is reported from sched:sched_process_exec, where argv can
 * be read in one copy from the new mm; a failed one from the syscall exit,
 * where the caller's argv pointers are still valid. Overhead: one record per
 * exec, fork and exit; nothing on other syscalls.
 */
#include "events.h"

struct exec_stash {
    u64 filename;
    u64 argv;
    u32 kind;
};

BPF_HASH(exec_pending, u32, struct exec_stash, 4096);

#define S_IFMT_ 0170000
#define S_IFSOCK_ 0140000
#define OVERLAYFS_MAGIC_ 0x794c7630
#define TMPFS_MAGIC_ 0x01021994

/* The family of the socket open on ``fd`` of the current task, 0 if none. */
static __always_inline u16 fd_socket_family(u64 fdarr, u32 fd)
{
    u64 file = rd_u64(fdarr, (u64)fd * 8);
    u64 inode = rd_u64(file, OFF_FILE_F_INODE);
    if (!inode || (rd_u16(inode, OFF_INODE_I_MODE) & S_IFMT_) != S_IFSOCK_)
        return 0;
    u64 sk = rd_u64(rd_u64(file, OFF_FILE_PRIVATE_DATA), OFF_SOCKET_SK);
    return rd_u16(sk, OFF_SK_FAMILY);
}

/* What the kernel knows at exec about the new image and the process: the
 * file's origin (overlay upper layer, tmpfs, memfd), sockets on fds 0-2 and
 * the pid inside its namespace (1: the container's init). */
static __always_inline void exec_context(struct ev_exec *e)
{
    u64 task = bpf_get_current_task();
    u64 fdt = rd_u64(rd_u64(task, OFF_TASK_FILES), OFF_FILES_FDT);
    u64 fdarr = rd_u64(fdt, OFF_FDT_FD);
    e->stdin_family = fd_socket_family(fdarr, 0);
    e->stdout_family = fd_socket_family(fdarr, 1);
    e->stderr_family = fd_socket_family(fdarr, 2);

    u64 pidp = rd_u64(task, OFF_TASK_THREAD_PID);
    u32 level = rd_u32(pidp, OFF_PID_LEVEL) & 31;
    e->vpid = rd_u32(pidp, OFF_PID_NUMBERS + (u64)level * SIZEOF_UPID + OFF_UPID_NR);

    u8 flags = 0;
    u64 exe = rd_u64(rd_u64(task, OFF_TASK_MM), OFF_MM_EXE_FILE);
    u64 inode = rd_u64(exe, OFF_FILE_F_INODE);
    u64 magic = rd_u64(rd_u64(inode, OFF_INODE_I_SB), OFF_SB_S_MAGIC);
    if (magic == OVERLAYFS_MAGIC_) {
        /* struct ovl_inode embeds the vfs inode; a file created or changed in
         * the container has an upper dentry */
        u64 ovl = inode - OFF_OVL_INODE_VFS_INODE;
        if (OFF_OVL_INODE_UPPERDENTRY && rd_u64(ovl, OFF_OVL_INODE_UPPERDENTRY))
            flags |= EXE_UPPER_LAYER;
    } else if (magic == TMPFS_MAGIC_) {
        char name[8] = {};
        u64 dentry = rd_u64(exe, OFF_FILE_F_PATH_DENTRY);
        u64 np = rd_u64(dentry, OFF_DENTRY_D_NAME_NAME);
        if (np)
            bpf_probe_read_kernel(name, 6, (void *)np);
        if (name[0] == 'm' && name[1] == 'e' && name[2] == 'm' && name[3] == 'f' && name[4] == 'd'
            && name[5] == ':')
            flags |= EXE_MEMFD;
        else
            flags |= EXE_TMPFS;
    }
    e->exe_flags = flags;
}

static __always_inline int exec_enter(u64 filename, u64 argv, u32 kind)
{
    if (is_self() || group_off(GRP_PROCESS))
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct exec_stash s = {.filename = filename, .argv = argv, .kind = kind};
    exec_pending.update(&tid, &s);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
    return exec_enter((u64)args->filename, (u64)args->argv, EV_EXEC);
}

TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
    return exec_enter((u64)args->filename, (u64)args->argv, EV_EXECVEAT);
}

/* A failed exec: the old image is intact, read argv through its pointers. */
static __always_inline int exec_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct exec_stash *s = exec_pending.lookup(&tid);
    if (!s)
        return 0;
    if (ret >= 0) {
        exec_pending.delete(&tid);
        return 0;
    }
    struct exec_stash st = *s;
    exec_pending.delete(&tid);
    struct ev_exec *e = scratch_get();
    if (!e)
        return 0;
    fill_hdr(&e->hdr, st.kind);
    e->retval = ret;
    e->argv_truncated = 0;
    e->exe_flags = 0;
    e->stdin_family = e->stdout_family = e->stderr_family = 0;
    e->vpid = 0;
    e->pad = 0;
    int n = bpf_probe_read_user_str(e->filename, PATH_MAX_LEN, (void *)st.filename);
    e->filename_len = n > 0 ? n : 0;
    u32 off = 0;
#pragma unroll
    for (int i = 0; i < MAX_ARGS; i++) {
        u64 p = 0;
        bpf_probe_read_user(&p, sizeof(p), (void *)(st.argv + i * 8));
        if (!p)
            break;
        if (off >= ARGV_SIZE) {
            e->argv_truncated = 1;
            break;
        }
        int k = bpf_probe_read_user_str(e->argv + (off & (ARGV_SIZE - 1)), ARGV_SIZE, (void *)p);
        if (k <= 0)
            break;
        off += k;
    }
    if (off > ARGV_SIZE) {
        off = ARGV_SIZE;
        e->argv_truncated = 1;
    }
    e->argv_len = off;
    emit_scratch(ctx, e, offsetof(struct ev_exec, argv) + off, st.kind);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
    return exec_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
    return exec_exit(args, args->ret);
}

TRACEPOINT_PROBE(sched, sched_process_exec)
{
    if (is_self() || group_off(GRP_PROCESS))
        return 0;
    struct ev_exec *e = scratch_get();
    if (!e)
        return 0;
    u32 kind = EV_EXEC;
    u32 old = args->old_pid;
    struct exec_stash *s = exec_pending.lookup(&old);
    if (s)
        kind = s->kind;
    fill_hdr(&e->hdr, kind);
    e->retval = 0;
    e->pad = 0;
    exec_context(e);
    u16 loc = args->data_loc_filename & 0xFFFF;
    int n = bpf_probe_read_kernel_str(e->filename, PATH_MAX_LEN, (void *)args + loc);
    e->filename_len = n > 0 ? n : 0;

    u64 mm = rd_u64(bpf_get_current_task(), OFF_TASK_MM);
    u64 start = rd_u64(mm, OFF_MM_ARG_START);
    u64 len = rd_u64(mm, OFF_MM_ARG_END) - start;
    e->argv_truncated = 0;
    if (len > ARGV_SIZE) {
        len = ARGV_SIZE;
        e->argv_truncated = 1;
    }
    len &= (ARGV_SIZE * 2 - 1);
    if (len > ARGV_SIZE)
        len = ARGV_SIZE;
    if (bpf_probe_read_user(e->argv, len, (void *)start) != 0)
        len = 0;
    e->argv_len = len;
    emit_scratch(args, e, offsetof(struct ev_exec, argv) + len, kind);
    return 0;
}

/* raw tracepoint: args[0] = parent task, args[1] = child task */
RAW_TRACEPOINT_PROBE(sched_process_fork)
{
    if (is_self() || group_off(GRP_PROCESS))
        return 0;
    u64 child = ctx->args[1];
    u32 child_pid = rd_u32(child, OFF_TASK_TGID);
    u32 child_tid = rd_u32(child, OFF_TASK_PID);
    if (child_pid != child_tid)
        return 0; /* a new thread, not a new process */
    struct ev_fork e = {};
    fill_hdr(&e.hdr, EV_FORK);
    e.child_pid = child_pid;
    e.child_tid = child_tid;
    e.child_start_ns = rd_u64(child, OFF_TASK_START_BOOTTIME);
    emit(ctx, &e, sizeof(e), EV_FORK);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
    if (is_self() || group_off(GRP_PROCESS))
        return 0;
#ifdef HAVE_EXIT_GROUP_DEAD
    if (!args->group_dead)
        return 0;
#else
    u64 pt = bpf_get_current_pid_tgid();
    if ((u32)pt != (pt >> 32))
        return 0;
#endif
    struct ev_exit e = {};
    fill_hdr(&e.hdr, EV_EXIT);
    e.exit_code = rd_u32(bpf_get_current_task(), OFF_TASK_EXIT_CODE);
    emit(args, &e, sizeof(e), EV_EXIT);
    return 0;
}
