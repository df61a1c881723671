/* Signals: every signal the kernel generates (signal:signal_generate, as a raw
 * tracepoint for the target task pointer), plus kill/tkill/tgkill attempts
 * that fail before any signal is generated (EPERM, ESRCH).
 *
 * The sender is the current task (header); the target is read through the
 * task pointer: pid, start time (for its exec_id), cgroup and comm. By default
 * the kernel publishes only what a responder cares about: signals that cross
 * a container (cgroup) boundary, that leave the sender's own process tree
 * (neither itself, its parent nor one of its children: a shell killing its
 * job, or a child's SIGCHLD, stay quiet), or that are fatal by nature
 * (SIGKILL and the core-dumping faults). sig_cfg[0] = 1 publishes every one.
 * Overhead: one map lookup per generated signal; kill syscalls add a stash.
 */
#include "events.h"

BPF_ARRAY(sig_cfg, u32, 1);

struct sig_stash {
    s32 sig;
    s32 target;
    u32 generated;
};

BPF_HASH(sig_pending, u32, struct sig_stash, 4096);

static __always_inline int sig_fatal(int sig)
{
    /* SIGILL SIGABRT SIGBUS SIGFPE SIGKILL SIGSEGV SIGSYS */
    return sig == 4 || sig == 6 || sig == 7 || sig == 8 || sig == 9 || sig == 11 || sig == 31;
}

static __always_inline int sig_publish_all(void)
{
    u32 zero = 0;
    u32 *v = sig_cfg.lookup(&zero);
    return v && *v;
}

/* raw tracepoint args: sig, kernel_siginfo *, task_struct *target, group, result */
RAW_TRACEPOINT_PROBE(signal_generate)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 self = pt >> 32;
    if (self == 0 || self == SELF_TGID || group_off(GRP_SIGNAL))
        return 0;
    u32 tid = (u32)pt;
    struct sig_stash *st = sig_pending.lookup(&tid);
    if (st)
        st->generated = 1;
    int sig = (int)ctx->args[0];
    u64 info = ctx->args[1];
    u64 task = ctx->args[2];
    u32 target = rd_u32(task, OFF_TASK_TGID);
    u64 target_cg = task_cgroup_id(task);
    u64 cg = bpf_get_current_cgroup_id();
    if (!sig_publish_all() && !sig_fatal(sig) && target_cg == cg) {
        u32 target_parent = rd_u32(rd_u64(task, OFF_TASK_REAL_PARENT), OFF_TASK_TGID);
        u32 my_parent = rd_u32(rd_u64(bpf_get_current_task(), OFF_TASK_REAL_PARENT), OFF_TASK_TGID);
        if (target == self || target_parent == self || target == my_parent)
            return 0;
    }
    struct ev_signal e = {};
    fill_hdr(&e.hdr, EV_SIGNAL);
    e.sig = sig;
    e.target_pid = target;
    e.result = (int)ctx->args[4];
    /* kernel_siginfo: si_signo, si_errno, si_code (three ints); SEND_SIG_NOINFO is 0 */
    e.code = info > 1 ? (s32)rd_u32(info, 8) : 0;
    bpf_probe_read_kernel(e.target_comm, sizeof(e.target_comm), (void *)(task + OFF_TASK_COMM));
    e.target_start_ns = rd_u64(rd_u64(task, OFF_TASK_GROUP_LEADER), OFF_TASK_START_BOOTTIME);
    e.target_cgroup_id = target_cg;
    emit(ctx, &e, sizeof(e), EV_SIGNAL);
    return 0;
}

static __always_inline int kill_enter(s32 target, s32 sig)
{
    if (sig == 0 || is_self() || group_off(GRP_SIGNAL))
        return 0; /* kill(pid, 0) only probes for existence */
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct sig_stash s = {.sig = sig, .target = target};
    sig_pending.update(&tid, &s);
    return 0;
}

/* A kill that failed before generating anything: the attempt is the event. */
static __always_inline int kill_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct sig_stash *sp = sig_pending.lookup(&tid);
    if (!sp)
        return 0;
    struct sig_stash s = *sp;
    sig_pending.delete(&tid);
    if (ret >= 0 || s.generated)
        return 0;
    struct ev_signal e = {};
    fill_hdr(&e.hdr, EV_SIGNAL);
    e.sig = s.sig;
    e.target_pid = s.target;
    e.result = ret;
    emit(ctx, &e, sizeof(e), EV_SIGNAL);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_kill) { return kill_enter(args->pid, args->sig); }
TRACEPOINT_PROBE(syscalls, sys_exit_kill) { return kill_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_tkill) { return kill_enter(args->pid, args->sig); }
TRACEPOINT_PROBE(syscalls, sys_exit_tkill) { return kill_exit(args, args->ret); }
TRACEPOINT_PROBE(syscalls, sys_enter_tgkill) { return kill_enter(args->tgid, args->sig); }
TRACEPOINT_PROBE(syscalls, sys_exit_tgkill) { return kill_exit(args, args->ret); }
