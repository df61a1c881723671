/* Network: connect, accept/accept4, bind, listen on IPv4 and IPv6 sockets,
 * with addresses, ports, protocol and the syscall result.
 *
 * Addresses given by the caller come from its sockaddr; the socket's own side
 * (local port of a connect, both ends of an accepted connection, the address
 * a listen is on) is read from the struct sock behind the fd, walking
 * task->files->fdt->fd[fd]->private_data->sk with BTF offsets. Other families
 * (unix sockets) are skipped. Overhead: only on these syscalls.
 */
#include "events.h"

#define AF_INET_ 2
#define AF_INET6_ 10
#define EBADF_ 9
#define ENOTSOCK_ 88

struct net_stash {
    u64 addr;
    s32 fd;
    s32 backlog;
    u32 kind;
};

BPF_HASH(net_pending, u32, struct net_stash, 4096);

static __always_inline u16 swap16(u16 v)
{
    return (v >> 8) | (v << 8);
}

static __always_inline u64 sock_of_fd(s32 fd)
{
    u64 files = rd_u64(bpf_get_current_task(), OFF_TASK_FILES);
    u64 fdt = rd_u64(files, OFF_FILES_FDT);
    u32 max = rd_u32(fdt, OFF_FDT_MAX_FDS);
    if (fd < 0 || (u32)fd >= max)
        return 0;
    u64 file = rd_u64(rd_u64(fdt, OFF_FDT_FD), (u64)fd * 8);
    u64 sock = rd_u64(file, OFF_FILE_PRIVATE_DATA);
    return rd_u64(sock, OFF_SOCKET_SK);
}

/* Fill family, protocol and both ends from the kernel socket. */
static __always_inline void from_sock(struct ev_net *e, u64 sk, int remote)
{
    e->family = rd_u16(sk, OFF_SK_FAMILY);
    e->protocol = rd_u16(sk, OFF_SK_PROTOCOL);
    e->sport = rd_u16(sk, OFF_SK_NUM);
    if (e->family == AF_INET_) {
        bpf_probe_read_kernel(e->saddr, 4, (void *)(sk + OFF_SK_RCV_SADDR));
        if (remote) {
            bpf_probe_read_kernel(e->daddr, 4, (void *)(sk + OFF_SK_DADDR));
            e->dport = swap16(rd_u16(sk, OFF_SK_DPORT));
        }
    } else if (e->family == AF_INET6_) {
        bpf_probe_read_kernel(e->saddr, 16, (void *)(sk + OFF_SK_V6_RCV_SADDR));
        if (remote) {
            bpf_probe_read_kernel(e->daddr, 16, (void *)(sk + OFF_SK_V6_DADDR));
            e->dport = swap16(rd_u16(sk, OFF_SK_DPORT));
        }
    }
}

/* sockaddr_in / sockaddr_in6 given by the caller: family, port, address. */
static __always_inline u16 from_user_addr(u64 uaddr, u8 *addr, u16 *port)
{
    u16 hdr[2] = {};
    if (!uaddr || bpf_probe_read_user(hdr, sizeof(hdr), (void *)uaddr) != 0)
        return 0;
    *port = swap16(hdr[1]);
    if (hdr[0] == AF_INET_)
        bpf_probe_read_user(addr, 4, (void *)(uaddr + 4));
    else if (hdr[0] == AF_INET6_)
        bpf_probe_read_user(addr, 16, (void *)(uaddr + 8));
    return hdr[0];
}

static __always_inline int net_enter(u32 kind, s32 fd, u64 addr, s32 backlog)
{
    if (is_self() || group_off(GRP_NETWORK))
        return 0;
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct net_stash s = {.addr = addr, .fd = fd, .backlog = backlog, .kind = kind};
    net_pending.update(&tid, &s);
    return 0;
}

static __always_inline int net_exit(void *ctx, long ret)
{
    u32 tid = (u32)bpf_get_current_pid_tgid();
    struct net_stash *sp = net_pending.lookup(&tid);
    if (!sp)
        return 0;
    struct net_stash s = *sp;
    net_pending.delete(&tid);

    struct ev_net e = {};
    e.retval = ret;
    e.backlog = s.backlog;
    s32 fd = (s.kind == EV_ACCEPT && ret >= 0) ? (s32)ret : s.fd;
    u64 sk = 0;
    if (ret != -EBADF_ && ret != -ENOTSOCK_)
        sk = sock_of_fd(fd);
    if (sk)
        from_sock(&e, sk, s.kind == EV_ACCEPT && ret >= 0);
    if (s.kind == EV_CONNECT) {
        u16 fam = from_user_addr(s.addr, e.daddr, &e.dport);
        if (!e.family)
            e.family = fam;
    } else if (s.kind == EV_BIND) {
        u16 fam = from_user_addr(s.addr, e.saddr, &e.sport);
        if (!e.family)
            e.family = fam;
    }
    if (e.family != AF_INET_ && e.family != AF_INET6_)
        return 0;
    fill_hdr(&e.hdr, s.kind);
    emit(ctx, &e, sizeof(e), s.kind);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_connect)
{
    return net_enter(EV_CONNECT, args->fd, (u64)args->uservaddr, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_connect) { return net_exit(args, args->ret); }

TRACEPOINT_PROBE(syscalls, sys_enter_bind)
{
    return net_enter(EV_BIND, args->fd, (u64)args->umyaddr, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_bind) { return net_exit(args, args->ret); }

TRACEPOINT_PROBE(syscalls, sys_enter_listen)
{
    return net_enter(EV_LISTEN, args->fd, 0, args->backlog);
}
TRACEPOINT_PROBE(syscalls, sys_exit_listen) { return net_exit(args, args->ret); }

TRACEPOINT_PROBE(syscalls, sys_enter_accept4)
{
    return net_enter(EV_ACCEPT, args->fd, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_accept4) { return net_exit(args, args->ret); }

#ifdef HAVE_TP_syscalls__sys_enter_accept
TRACEPOINT_PROBE(syscalls, sys_enter_accept)
{
    return net_enter(EV_ACCEPT, args->fd, 0, 0);
}
TRACEPOINT_PROBE(syscalls, sys_exit_accept) { return net_exit(args, args->ret); }
#endif
