/* File access: open/openat/openat2/creat, unlink, rename, chmod, filtered in
 * the kernel so a busy host does not flood the bus.
 *
 * The filter is a longest-prefix-match trie of absolute path prefixes (filled
 * by the loader). A prefix flagged PFX_ANY reports every open below it; one
 * flagged PFX_WRITE only opens with write intent (O_WRONLY, O_RDWR, O_CREAT,
 * O_TRUNC, O_APPEND). unlink/rename/chmod report under either flag. Relative
 * paths are not resolved in the kernel and therefore not matched. Overhead:
 * one user string copy and one trie lookup per open on the host.
 */
#include "events.h"

#define O_WRITE_INTENT (01 | 02 | 0100 | 01000 | 02000)

struct file_stash {
    u64 path;
    u64 target;
    s32 flags;
    u32 mode;
    u32 kind;
};

BPF_LPM_TRIE(prefixes, struct lpm_key, u8, 256);
BPF_HASH(file_pending, u32, struct file_stash, 4096);

static __always_inline u8 prefix_flags(u64 path)
{
    struct lpm_key k = {};
    k.prefixlen = PREFIX_KEY_LEN * 8;
    if (bpf_probe_read_user_str(k.data, sizeof(k.data), (void *)path) <= 0)
        return 0;
    u8 *f = prefixes.lookup(&k);
    return f ? *f : 0;
}

static __always_inline int file_enter(u32 kind, u64 path, u64 target, s32 flags, u32 mode)
{
    if (is_self() || group_off(GRP_FILE))
        return 0;
    u8 f = prefix_flags(path);
    if (!f && target)
        f = prefix_flags(target);
    if (!f)
        return 0;
    if (kind == EV_OPEN && !(f & PFX_ANY) && !(flags & O_WRITE_INTENT))
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct file_stash s = {.path = path, .target = target, .flags = flags, .mode = mode, .kind = kind};
    file_pending.update(&tid, &s);
    return 0;
}

static __always_inline int file_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct file_stash *sp = file_pending.lookup(&tid);
    if (!sp)
        return 0;
    struct file_stash s = *sp;
    file_pending.delete(&tid);
    if (group_off(GRP_FILE))
        return 0; /* switched off while the call ran: nothing after the switch */
    struct ev_file *e = scratch_get();
    if (!e)
        return 0;
    fill_hdr(&e->hdr, s.kind);
    e->retval = ret;
    e->flags = s.flags;
    e->mode = s.mode;
    int n = bpf_probe_read_user_str(e->path, PATH_MAX_LEN, (void *)s.path);
    e->path_len = n > 0 ? n : 0;
    e->target_len = 0;
    if (s.target) {
        n = bpf_probe_read_user_str(e->target, PATH_MAX_LEN, (void *)s.target);
        e->target_len = n > 0 ? n : 0;
        emit_scratch(ctx, e, offsetof(struct ev_file, target) + e->target_len, s.kind);
    } else {
        emit_scratch(ctx, e, offsetof(struct ev_file, path) + e->path_len, s.kind);
    }
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
    return file_enter(EV_OPEN, (u64)args->filename, 0, args->flags, args->mode);
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat) { return file_exit(args, args->ret); }

#ifdef HAVE_TP_syscalls__sys_enter_openat2
TRACEPOINT_PROBE(syscalls, sys_enter_openat2)
{
    u64 how[2] = {};
    bpf_probe_read_user(how, sizeof(how), (void *)args->how);
    return file_enter(EV_OPEN, (u64)args->filename, 0, (s32)how[0], (u32)how[1]);
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat2) { return file_exit(args, args->ret); }
#endif

#ifdef HAVE_TP_syscalls__sys_enter_open
TRACEPOINT_PROBE(syscalls, sys_enter_open)
{
    return file_enter(EV_OPEN, (u64)args->filename, 0, args->flags, args->mode);
}
TRACEPOINT_PROBE(syscalls, sys_exit_open) { return file_exit(args, args->ret); }
#endif

#ifdef HAVE_TP_syscalls__sys_enter_creat
TRACEPOINT_PROBE(syscalls, sys_enter_creat)
{
    return file_enter(EV_OPEN, (u64)args->pathname, 0, 01 | 0100 | 01000, args->mode);
}
TRACEPOINT_PROBE(syscalls, sys_exit_creat) { return file_exit(args, args->ret); }
#endif

TRACEPOINT_PROBE(syscalls, sys_enter_unlinkat)
{
    return file_enter(EV_UNLINK, (u64)args->pathname, 0, args->flag, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_unlinkat) { return file_exit(args, args->ret); }

#ifdef HAVE_TP_syscalls__sys_enter_unlink
TRACEPOINT_PROBE(syscalls, sys_enter_unlink)
{
    return file_enter(EV_UNLINK, (u64)args->pathname, 0, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_unlink) { return file_exit(args, args->ret); }
#endif

TRACEPOINT_PROBE(syscalls, sys_enter_renameat2)
{
    return file_enter(EV_RENAME, (u64)args->oldname, (u64)args->newname, args->flags, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_renameat2) { return file_exit(args, args->ret); }

#ifdef HAVE_TP_syscalls__sys_enter_renameat
TRACEPOINT_PROBE(syscalls, sys_enter_renameat)
{
    return file_enter(EV_RENAME, (u64)args->oldname, (u64)args->newname, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_renameat) { return file_exit(args, args->ret); }
#endif

#ifdef HAVE_TP_syscalls__sys_enter_rename
TRACEPOINT_PROBE(syscalls, sys_enter_rename)
{
    return file_enter(EV_RENAME, (u64)args->oldname, (u64)args->newname, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_rename) { return file_exit(args, args->ret); }
#endif

TRACEPOINT_PROBE(syscalls, sys_enter_fchmodat)
{
    return file_enter(EV_CHMOD, (u64)args->filename, 0, 0, args->mode);
}
TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat) { return file_exit(args, args->ret); }

#ifdef HAVE_TP_syscalls__sys_enter_fchmodat2
TRACEPOINT_PROBE(syscalls, sys_enter_fchmodat2)
{
    return file_enter(EV_CHMOD, (u64)args->filename, 0, args->flags, args->mode);
}
TRACEPOINT_PROBE(syscalls, sys_exit_fchmodat2) { return file_exit(args, args->ret); }
#endif

#ifdef HAVE_TP_syscalls__sys_enter_chmod
TRACEPOINT_PROBE(syscalls, sys_enter_chmod)
{
    return file_enter(EV_CHMOD, (u64)args->filename, 0, 0, args->mode);
}
TRACEPOINT_PROBE(syscalls, sys_exit_chmod) { return file_exit(args, args->ret); }
#endif
