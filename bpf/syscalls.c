/* Syscall counts per (cgroup, process, syscall nr), aggregated in the kernel.
 *
 * raw_syscalls:sys_enter as a raw tracepoint (no argument copy) bumps a per-CPU
 * counter: no atomics, no ring buffer traffic. Two map pairs are double
 * buffered: user space flips sc_ctl[0] each interval and drains the idle pair,
 * so no increment is lost between read and delete. Overhead: one per-CPU hash
 * lookup per syscall on the host.
 *
 * runc's init names itself "runc:[0:PARENT]", "runc:[1:CHILD]", "runc:[2:INIT]"
 * while it sets a container up inside the container's cgroup, until it execs
 * the workload: its calls (mount, pivot_root, unshare, ...) are the runtime's,
 * not the workload's, and are not counted, so a profile learned from the counts
 * holds what the workload uses.
 */
#include "events.h"

#define SC_MAX_KEYS 32768
#define SC_MAX_PROCS 8192

#define RUNC_INIT_PREFIX 0x5b3a636e7572ULL /* "runc:[" little-endian */
#define PREFIX6_MASK 0xffffffffffffULL

BPF_ARRAY(sc_ctl, u32, 1);
BPF_PERCPU_HASH(sc_counts0, struct sc_key, u64, SC_MAX_KEYS);
BPF_PERCPU_HASH(sc_counts1, struct sc_key, u64, SC_MAX_KEYS);
BPF_HASH(sc_procs0, u32, struct sc_proc, SC_MAX_PROCS);
BPF_HASH(sc_procs1, u32, struct sc_proc, SC_MAX_PROCS);

static __always_inline void sc_remember(u32 pid, u64 cg, u32 sel)
{
    struct sc_proc p = {};
    p.cgroup_id = cg;
    p.start_ns = rd_u64(rd_u64(bpf_get_current_task(), OFF_TASK_GROUP_LEADER), OFF_TASK_START_BOOTTIME);
    bpf_get_current_comm(p.comm, sizeof(p.comm));
    if (sel)
        sc_procs1.insert(&pid, &p);
    else
        sc_procs0.insert(&pid, &p);
}

RAW_TRACEPOINT_PROBE(sys_enter)
{
    u64 pt = bpf_get_current_pid_tgid();
    u32 pid = pt >> 32;
    if (pid == SELF_TGID || pid == 0 || group_off(GRP_SYSCALLS))
        return 0;
    u64 comm8 = rd_u64(bpf_get_current_task(), OFF_TASK_COMM);
    if ((comm8 & PREFIX6_MASK) == RUNC_INIT_PREFIX)
        return 0;
    struct sc_key k = {};
    k.cgroup_id = bpf_get_current_cgroup_id();
    k.pid = pid;
    k.nr = (u32)ctx->args[1];
    u32 zero = 0;
    u32 *selp = sc_ctl.lookup(&zero);
    u32 sel = selp ? *selp : 0;
    u64 *c = sel ? sc_counts1.lookup(&k) : sc_counts0.lookup(&k);
    if (c) {
        (*c)++;
        return 0;
    }
    u64 one = 1;
    int err = sel ? sc_counts1.update(&k, &one) : sc_counts0.update(&k, &one);
    if (err)
        drops.atomic_increment(EV_SYSCALL_COUNTS);
    else
        sc_remember(pid, k.cgroup_id, sel);
    return 0;
}
