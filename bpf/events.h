/* Event records shared by every probe group and by producer/decoder.py.
 *
 * This header is the one definition of the kernel-to-user wire format: the
 * Python decoder parses the enum and structs below (one member per line,
 * fixed-width types only) and a test checks its layout against the C compiler.
 *
 * Kernel structs are never dereferenced through headers (the installed headers
 * belong to another kernel): OFF_* and SIZEOF_* macros come from the running
 * kernel's BTF (producer/btf.py) as -D cflags. Knobs passed as -D:
 *   SELF_TGID       the producer's own pid, ignored by every probe
 *   PATH_MAX_LEN    path bytes kept per path (power of two)
 *   ARGV_SIZE       argv bytes kept per exec (power of two)
 *   STR_ARG_LEN     bytes kept per string argument of privilege events
 */
#ifndef EUNOMIA_EVENTS_H
#define EUNOMIA_EVENTS_H

#ifndef PATH_MAX_LEN
#define PATH_MAX_LEN 256
#endif
#ifndef ARGV_SIZE
#define ARGV_SIZE 512
#endif
#ifndef STR_ARG_LEN
#define STR_ARG_LEN 128
#endif
#define PREFIX_KEY_LEN 64
#define MAX_ARGS 24

enum ev_kind {
    EV_EXEC = 1,
    EV_EXECVEAT = 2,
    EV_FORK = 3,
    EV_EXIT = 4,
    EV_OPEN = 5,
    EV_UNLINK = 6,
    EV_RENAME = 7,
    EV_CHMOD = 8,
    EV_CONNECT = 9,
    EV_ACCEPT = 10,
    EV_BIND = 11,
    EV_LISTEN = 12,
    EV_SETUID = 13,
    EV_SETGID = 14,
    EV_SETRESUID = 15,
    EV_SETRESGID = 16,
    EV_CAPSET = 17,
    EV_PTRACE = 18,
    EV_MOUNT = 19,
    EV_UMOUNT = 20,
    EV_UNSHARE = 21,
    EV_SETNS = 22,
    EV_INIT_MODULE = 23,
    EV_FINIT_MODULE = 24,
    EV_MEMFD_CREATE = 25,
    EV_BPF = 26,
    EV_SIGNAL = 27,
    EV_OOM_KILL = 28,
    EV_SYSCALL_COUNTS = 31,
    EV_KIND_MAX = 32,
};

/* prefix table values (bit flags) */
enum prefix_flag {
    PFX_ANY = 1,
    PFX_WRITE = 2,
};

struct ev_hdr {
    u64 ts_boot_ns;
    u64 cgroup_id;
    u64 start_ns;
    u64 parent_start_ns;
    u32 pid;
    u32 tid;
    u32 ppid;
    u32 uid;
    u32 gid;
    u32 ns_pid;
    u32 ns_mnt;
    u32 ns_net;
    u32 ns_user;
    u32 ns_uts;
    u32 ns_ipc;
    u32 ns_cgroup;
    u16 kind;
    u16 size;
    char comm[16];
};

/* exe_flags: where the new image's file lives, read from mm->exe_file at exec */
enum exe_flag {
    EXE_UPPER_LAYER = 1,
    EXE_TMPFS = 2,
    EXE_MEMFD = 4,
};

/* stdin/stdout/stderr_family: the address family of a socket on fd 0-2 at
 * exec (0: not a socket); vpid: the pid inside the process's pid namespace */
struct ev_exec {
    struct ev_hdr hdr;
    s32 retval;
    u16 filename_len;
    u16 argv_len;
    u8 argv_truncated;
    u8 exe_flags;
    u16 stdin_family;
    u16 stdout_family;
    u16 stderr_family;
    u32 vpid;
    u32 pad;
    char filename[PATH_MAX_LEN];
    char argv[ARGV_SIZE];
};

struct ev_fork {
    struct ev_hdr hdr;
    u32 child_pid;
    u32 child_tid;
    u64 child_start_ns;
};

struct ev_exit {
    struct ev_hdr hdr;
    s32 exit_code;
    u32 pad;
};

struct ev_file {
    struct ev_hdr hdr;
    s32 retval;
    s32 flags;
    u32 mode;
    u16 path_len;
    u16 target_len;
    char path[PATH_MAX_LEN];
    char target[PATH_MAX_LEN];
};

struct ev_net {
    struct ev_hdr hdr;
    s32 retval;
    u16 family;
    u16 protocol;
    u16 sport;
    u16 dport;
    s32 backlog;
    u8 saddr[16];
    u8 daddr[16];
};

struct ev_priv {
    struct ev_hdr hdr;
    s64 retval;
    s64 args[4];
    s32 target_pid;
    u16 nargs;
    u16 str_len;
    u16 str2_len;
    u16 str3_len;
    u32 pad;
    char str[STR_ARG_LEN];
    char str2[STR_ARG_LEN];
    char str3[STR_ARG_LEN];
};

struct ev_signal {
    struct ev_hdr hdr;
    s32 sig;
    s32 target_pid;
    s32 result;
    s32 code;
    char target_comm[16];
    u64 target_start_ns;
    u64 target_cgroup_id;
};

struct ev_oom {
    struct ev_hdr hdr;
    s32 victim_pid;
    s32 oom_score_adj;
    u64 total_vm_kb;
    u64 anon_rss_kb;
    u64 file_rss_kb;
    u64 shmem_rss_kb;
    u64 pgtables_kb;
    char victim_comm[16];
};

/* Probe groups: index into the group_off map that switches a loaded group on
 * and off at run time (producer/loader.py GROUPS lists them in this order). */
enum probe_group {
    GRP_PROCESS = 0,
    GRP_FILE = 1,
    GRP_NETWORK = 2,
    GRP_PRIV = 3,
    GRP_SYSCALLS = 4,
    GRP_SIGNAL = 5,
    GRP_OOM = 6,
    GRP_FILEIO = 7,
    GRP_MAX = 8,
};

/* ev_signal.result: signal_generate's outcome (>= 0) or a failed kill
 * syscall's -errno (< 0); the values mirror the kernel's TRACE_SIGNAL_* */
enum sig_result {
    SIG_DELIVERED = 0,
    SIG_IGNORED = 1,
    SIG_ALREADY_PENDING = 2,
    SIG_OVERFLOW_FAIL = 3,
    SIG_LOSE_INFO = 4,
};

/* file I/O statistics: key and per-CPU value of the fileio maps. The inode's
 * address is in the key so an fd reused for another file (or kept across
 * exec) is counted apart; its number lets user space check that the path it
 * resolves names the same file (numbers alone repeat across filesystems) */
struct fio_key {
    u64 cgroup_id;
    u64 inode;
    u32 pid;
    s32 fd;
};

/* exec_gen: task->self_exec_id at the key's latest call, i.e. which program
 * of the pid made it */
struct fio_val {
    u64 reads;
    u64 read_bytes;
    u64 writes;
    u64 write_bytes;
    u64 ino;
    u64 exec_gen;
};

/* syscall counts: key of the per-CPU hash, and the process seen first */
struct sc_key {
    u64 cgroup_id;
    u32 pid;
    u32 nr;
};

struct sc_proc {
    u64 start_ns;
    u64 cgroup_id;
    char comm[16];
};

#ifdef EUNOMIA_KERNEL /* ---- kernel side only below (set by the loader) ---- */

struct scratch_buf {
    char b[sizeof(struct ev_exec) + ARGV_SIZE + PATH_MAX_LEN];
};

struct lpm_key {
    u32 prefixlen;
    u8 data[PREFIX_KEY_LEN];
};

/* one ring buffer and one drop counter per kind for every probe group */
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_ARRAY(drops, u64, EV_KIND_MAX);
BPF_PERCPU_ARRAY(scratch, struct scratch_buf, 1);

static __always_inline u64 rd_u64(u64 base, u64 off)
{
    u64 v = 0;
    if (base)
        bpf_probe_read_kernel(&v, sizeof(v), (void *)(base + off));
    return v;
}

static __always_inline u32 rd_u32(u64 base, u64 off)
{
    u32 v = 0;
    if (base)
        bpf_probe_read_kernel(&v, sizeof(v), (void *)(base + off));
    return v;
}

static __always_inline u16 rd_u16(u64 base, u64 off)
{
    u16 v = 0;
    if (base)
        bpf_probe_read_kernel(&v, sizeof(v), (void *)(base + off));
    return v;
}

/* Each group's flag: 0 (the array's initial value) is on, so a group is live
 * from the moment it attaches; user space writes 1 to switch it off. */
BPF_ARRAY(group_off_map, u32, GRP_MAX);

static __always_inline int group_off(u32 group)
{
    u32 *v = group_off_map.lookup(&group);
    return v && *v;
}

static __always_inline int is_self(void)
{
    return (bpf_get_current_pid_tgid() >> 32) == SELF_TGID;
}

static __always_inline void *scratch_get(void)
{
    u32 zero = 0;
    return scratch.lookup(&zero);
}

static __always_inline u32 ns_inum(u64 nsproxy, u64 member_off, u64 inum_off)
{
    return rd_u32(rd_u64(nsproxy, member_off), inum_off);
}

/* The common header of docs/architecture.md (raw_event) for the current task. */
static __always_inline void fill_hdr(struct ev_hdr *h, u32 kind)
{
    u64 task = bpf_get_current_task();
    u64 pt = bpf_get_current_pid_tgid();
    u64 ug = bpf_get_current_uid_gid();

    h->ts_boot_ns = bpf_ktime_get_boot_ns();
    h->cgroup_id = bpf_get_current_cgroup_id();
    h->pid = pt >> 32;
    h->tid = (u32)pt;
    h->uid = (u32)ug;
    h->gid = ug >> 32;
    h->kind = kind;
    bpf_get_current_comm(h->comm, sizeof(h->comm));

    u64 leader = rd_u64(task, OFF_TASK_GROUP_LEADER);
    h->start_ns = rd_u64(leader, OFF_TASK_START_BOOTTIME);
    u64 parent = rd_u64(task, OFF_TASK_REAL_PARENT);
    h->ppid = rd_u32(parent, OFF_TASK_TGID);
    h->parent_start_ns = rd_u64(rd_u64(parent, OFF_TASK_GROUP_LEADER), OFF_TASK_START_BOOTTIME);

    u64 nsp = rd_u64(task, OFF_TASK_NSPROXY);
    h->ns_uts = ns_inum(nsp, OFF_NSPROXY_UTS, OFF_UTS_NS_INUM);
    h->ns_ipc = ns_inum(nsp, OFF_NSPROXY_IPC, OFF_IPC_NS_INUM);
    h->ns_mnt = ns_inum(nsp, OFF_NSPROXY_MNT, OFF_MNT_NS_INUM);
    h->ns_net = ns_inum(nsp, OFF_NSPROXY_NET, OFF_NET_NS_INUM);
    h->ns_cgroup = ns_inum(nsp, OFF_NSPROXY_CGROUP, OFF_CGROUP_NS_INUM);
    h->ns_user = ns_inum(rd_u64(task, OFF_TASK_REAL_CRED), OFF_CRED_USER_NS, OFF_USER_NS_INUM);
    /* the active pid namespace: thread_pid->numbers[thread_pid->level].ns */
    u64 pidp = rd_u64(task, OFF_TASK_THREAD_PID);
    u32 level = rd_u32(pidp, OFF_PID_LEVEL) & 31;
    u64 pidns = rd_u64(pidp, OFF_PID_NUMBERS + (u64)level * SIZEOF_UPID + OFF_UPID_NS);
    h->ns_pid = rd_u32(pidns, OFF_PID_NS_INUM);
}

/* The common header for a task other than the current one (an OOM victim):
 * the same fields as fill_hdr, read through the task pointer. */
static __always_inline u64 task_cgroup_id(u64 task)
{
    u64 dfl = rd_u64(rd_u64(task, OFF_TASK_CGROUPS), OFF_CSS_SET_DFL_CGRP);
    return rd_u64(rd_u64(dfl, OFF_CGROUP_KN), OFF_KERNFS_NODE_ID);
}

static __always_inline void fill_hdr_task(struct ev_hdr *h, u32 kind, u64 task)
{
    h->ts_boot_ns = bpf_ktime_get_boot_ns();
    h->cgroup_id = task_cgroup_id(task);
    h->pid = rd_u32(task, OFF_TASK_TGID);
    h->tid = rd_u32(task, OFF_TASK_PID);
    u64 cred = rd_u64(task, OFF_TASK_REAL_CRED);
    h->uid = rd_u32(cred, OFF_CRED_UID);
    h->gid = rd_u32(cred, OFF_CRED_GID);
    h->kind = kind;
    bpf_probe_read_kernel(h->comm, sizeof(h->comm), (void *)(task + OFF_TASK_COMM));

    u64 leader = rd_u64(task, OFF_TASK_GROUP_LEADER);
    h->start_ns = rd_u64(leader, OFF_TASK_START_BOOTTIME);
    u64 parent = rd_u64(task, OFF_TASK_REAL_PARENT);
    h->ppid = rd_u32(parent, OFF_TASK_TGID);
    h->parent_start_ns = rd_u64(rd_u64(parent, OFF_TASK_GROUP_LEADER), OFF_TASK_START_BOOTTIME);

    u64 nsp = rd_u64(task, OFF_TASK_NSPROXY);
    h->ns_uts = ns_inum(nsp, OFF_NSPROXY_UTS, OFF_UTS_NS_INUM);
    h->ns_ipc = ns_inum(nsp, OFF_NSPROXY_IPC, OFF_IPC_NS_INUM);
    h->ns_mnt = ns_inum(nsp, OFF_NSPROXY_MNT, OFF_MNT_NS_INUM);
    h->ns_net = ns_inum(nsp, OFF_NSPROXY_NET, OFF_NET_NS_INUM);
    h->ns_cgroup = ns_inum(nsp, OFF_NSPROXY_CGROUP, OFF_CGROUP_NS_INUM);
    h->ns_user = ns_inum(cred, OFF_CRED_USER_NS, OFF_USER_NS_INUM);
    u64 pidp = rd_u64(task, OFF_TASK_THREAD_PID);
    u32 level = rd_u32(pidp, OFF_PID_LEVEL) & 31;
    u64 pidns = rd_u64(pidp, OFF_PID_NUMBERS + (u64)level * SIZEOF_UPID + OFF_UPID_NS);
    h->ns_pid = rd_u32(pidns, OFF_PID_NS_INUM);
}

/* Output one fixed-size record; a full ring buffer is counted per kind. */
static __always_inline void emit(void *ctx, void *ev, u32 size, u32 kind)
{
    ((struct ev_hdr *)ev)->size = size;
    if (events.ringbuf_output(ev, size, 0) != 0)
        drops.atomic_increment(kind);
}

/* Output the first ``size`` bytes of the per-CPU scratch record. The barrier
 * keeps clang from dropping the clamp the verifier needs to bound ``size``. */
static __always_inline void emit_scratch(void *ctx, void *ev, u64 size, u32 kind)
{
    asm volatile("%0 &= 0xfff" : "+r"(size));
    if (size > sizeof(struct scratch_buf))
        size = sizeof(struct scratch_buf);
    ((struct ev_hdr *)ev)->size = size;
    if (events.ringbuf_output(ev, size, 0) != 0)
        drops.atomic_increment(kind);
}

#endif /* EUNOMIA_KERNEL */
#endif /* EUNOMIA_EVENTS_H */
