/* Privilege changes and escape signals: setuid/setgid/setresuid/setresgid,
 * capset, ptrace, mount/umount, unshare/setns, init_module/finit_module,
 * memfd_create, bpf. Each reports its arguments and the syscall result.
 *
 * Arguments are stashed at syscall entry and reported at exit with the result;
 * string arguments are read at exit (the caller's memory is still there).
 * Kernels built without module support have no module syscall tracepoints:
 * then a raw sys_exit tracepoint filtered on the syscall number reports them
 * (the attempt matters even when it fails with ENOSYS). Overhead: only on
 * these syscalls, plus one compare per syscall for that fallback.
 */
#include <linux/capability.h> /* cap_user_header_t of the capset tracepoint */
#include "events.h"

#define NR_INIT_MODULE 175
#define NR_FINIT_MODULE 313

struct priv_stash {
    s64 args[4];
    u64 str[3];
    s32 target_pid;
    u16 nargs;
    u16 kind;
};

BPF_HASH(priv_pending, u32, struct priv_stash, 4096);

static __always_inline int priv_stash(struct priv_stash *s)
{
    if (is_self() || group_off(GRP_PRIV))
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    priv_pending.update(&tid, s);
    return 0;
}

static __always_inline void priv_emit(void *ctx, struct priv_stash *s, long ret)
{
    struct ev_priv *e = scratch_get();
    if (!e)
        return;
    fill_hdr(&e->hdr, s->kind);
    e->retval = ret;
    e->nargs = s->nargs;
    e->target_pid = s->target_pid;
#pragma unroll
    for (int i = 0; i < 4; i++)
        e->args[i] = s->args[i];
    int n;
    e->str_len = e->str2_len = e->str3_len = 0;
    if (s->str[0]) {
        n = bpf_probe_read_user_str(e->str, STR_ARG_LEN, (void *)s->str[0]);
        e->str_len = n > 0 ? n : 0;
    }
    if (s->str[1]) {
        n = bpf_probe_read_user_str(e->str2, STR_ARG_LEN, (void *)s->str[1]);
        e->str2_len = n > 0 ? n : 0;
    }
    if (s->str[2]) {
        n = bpf_probe_read_user_str(e->str3, STR_ARG_LEN, (void *)s->str[2]);
        e->str3_len = n > 0 ? n : 0;
    }
    emit_scratch(ctx, e, sizeof(struct ev_priv), s->kind);
}

static __always_inline int priv_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct priv_stash *sp = priv_pending.lookup(&tid);
    if (!sp)
        return 0;
    struct priv_stash s = *sp;
    priv_pending.delete(&tid);
    priv_emit(ctx, &s, ret);
    return 0;
}

#define PRIV_EXIT(name) \
    TRACEPOINT_PROBE(syscalls, sys_exit_##name) { return priv_exit(args, args->ret); }

TRACEPOINT_PROBE(syscalls, sys_enter_setuid)
{
    struct priv_stash s = {.kind = EV_SETUID, .nargs = 1, .args = {args->uid}};
    return priv_stash(&s);
}
PRIV_EXIT(setuid)

TRACEPOINT_PROBE(syscalls, sys_enter_setgid)
{
    struct priv_stash s = {.kind = EV_SETGID, .nargs = 1, .args = {args->gid}};
    return priv_stash(&s);
}
PRIV_EXIT(setgid)

TRACEPOINT_PROBE(syscalls, sys_enter_setresuid)
{
    struct priv_stash s = {.kind = EV_SETRESUID, .nargs = 3,
                           .args = {(s32)args->ruid, (s32)args->euid, (s32)args->suid}};
    return priv_stash(&s);
}
PRIV_EXIT(setresuid)

TRACEPOINT_PROBE(syscalls, sys_enter_setresgid)
{
    struct priv_stash s = {.kind = EV_SETRESGID, .nargs = 3,
                           .args = {(s32)args->rgid, (s32)args->egid, (s32)args->sgid}};
    return priv_stash(&s);
}
PRIV_EXIT(setresgid)

/* args: effective, permitted, inheritable (64-bit: low word | high word << 32) */
TRACEPOINT_PROBE(syscalls, sys_enter_capset)
{
    u32 hdr[2] = {};
    u32 data[6] = {};
    bpf_probe_read_user(hdr, sizeof(hdr), (void *)args->header);
    bpf_probe_read_user(data, sizeof(data), (void *)args->data);
    struct priv_stash s = {.kind = EV_CAPSET, .nargs = 4, .target_pid = hdr[1]};
    s.args[0] = data[0] | ((u64)data[3] << 32);
    s.args[1] = data[1] | ((u64)data[4] << 32);
    s.args[2] = data[2] | ((u64)data[5] << 32);
    s.args[3] = hdr[0];
    return priv_stash(&s);
}
PRIV_EXIT(capset)

TRACEPOINT_PROBE(syscalls, sys_enter_ptrace)
{
    struct priv_stash s = {.kind = EV_PTRACE, .nargs = 2, .target_pid = args->pid,
                           .args = {args->request, args->addr}};
    return priv_stash(&s);
}
PRIV_EXIT(ptrace)

/* str: source, str2: target, str3: filesystem type; args: flags */
TRACEPOINT_PROBE(syscalls, sys_enter_mount)
{
    struct priv_stash s = {.kind = EV_MOUNT, .nargs = 1, .args = {args->flags},
                           .str = {(u64)args->dev_name, (u64)args->dir_name, (u64)args->type}};
    return priv_stash(&s);
}
PRIV_EXIT(mount)

TRACEPOINT_PROBE(syscalls, sys_enter_umount)
{
    struct priv_stash s = {.kind = EV_UMOUNT, .nargs = 1, .args = {args->flags},
                           .str = {(u64)args->name}};
    return priv_stash(&s);
}
PRIV_EXIT(umount)

TRACEPOINT_PROBE(syscalls, sys_enter_unshare)
{
    struct priv_stash s = {.kind = EV_UNSHARE, .nargs = 1, .args = {args->unshare_flags}};
    return priv_stash(&s);
}
PRIV_EXIT(unshare)

TRACEPOINT_PROBE(syscalls, sys_enter_setns)
{
    struct priv_stash s = {.kind = EV_SETNS, .nargs = 2, .args = {args->fd, args->flags}};
    return priv_stash(&s);
}
PRIV_EXIT(setns)

TRACEPOINT_PROBE(syscalls, sys_enter_memfd_create)
{
    struct priv_stash s = {.kind = EV_MEMFD_CREATE, .nargs = 1, .args = {args->flags},
                           .str = {(u64)args->uname}};
    return priv_stash(&s);
}
PRIV_EXIT(memfd_create)

TRACEPOINT_PROBE(syscalls, sys_enter_bpf)
{
    struct priv_stash s = {.kind = EV_BPF, .nargs = 2, .args = {args->cmd, args->size}};
    return priv_stash(&s);
}
PRIV_EXIT(bpf)

#ifdef HAVE_TP_syscalls__sys_enter_finit_module
TRACEPOINT_PROBE(syscalls, sys_enter_init_module)
{
    struct priv_stash s = {.kind = EV_INIT_MODULE, .nargs = 1, .args = {args->len},
                           .str = {(u64)args->uargs}};
    return priv_stash(&s);
}
PRIV_EXIT(init_module)

TRACEPOINT_PROBE(syscalls, sys_enter_finit_module)
{
    struct priv_stash s = {.kind = EV_FINIT_MODULE, .nargs = 2, .args = {args->fd, args->flags},
                           .str = {(u64)args->uargs}};
    return priv_stash(&s);
}
PRIV_EXIT(finit_module)
#else
/* raw sys_exit: args[0] = struct pt_regs *, args[1] = return value */
RAW_TRACEPOINT_PROBE(sys_exit)
{
    u64 regs = ctx->args[0];
    u64 nr = rd_u64(regs, OFF_PT_REGS_ORIG_AX);
    if (nr != NR_INIT_MODULE && nr != NR_FINIT_MODULE)
        return 0;
    if (is_self() || group_off(GRP_PRIV))
        return 0;
    struct priv_stash s = {};
    if (nr == NR_INIT_MODULE) {
        s.kind = EV_INIT_MODULE;
        s.nargs = 1;
        s.args[0] = rd_u64(regs, OFF_PT_REGS_SI);
        s.str[0] = rd_u64(regs, OFF_PT_REGS_DX);
    } else {
        s.kind = EV_FINIT_MODULE;
        s.nargs = 2;
        s.args[0] = rd_u64(regs, OFF_PT_REGS_DI);
        s.args[1] = rd_u64(regs, OFF_PT_REGS_DX);
        s.str[0] = rd_u64(regs, OFF_PT_REGS_SI);
    }
    priv_emit(ctx, &s, (long)ctx->args[1]);
    return 0;
}
#endif
