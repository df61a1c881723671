/* OOM kills: oom:mark_victim, as a raw tracepoint for the victim's task.
 *
 * The header describes the victim, not the current task (the one whose
 * allocation ran the OOM killer), so the event joins the victim's container
 * and exec_id downstream. Memory figures are read as the tracepoint computes
 * them: mm->total_vm and the rss_stat counters' global counts (what
 * get_mm_counter returns), in kB. Overhead: none until the kernel kills.
 */
#include "events.h"

#define MM_FILEPAGES 0
#define MM_ANONPAGES 1
#define MM_SHMEMPAGES 3
#define PAGE_KB 4

static __always_inline u64 mm_counter_kb(u64 mm, u32 member)
{
    s64 v = (s64)rd_u64(mm, OFF_MM_RSS_STAT + member * SIZEOF_PERCPU_COUNTER + OFF_PERCPU_COUNTER_COUNT);
    return v > 0 ? (u64)v * PAGE_KB : 0;
}

/* raw tracepoint args: task_struct *victim, uid_t uid */
RAW_TRACEPOINT_PROBE(mark_victim)
{
    if (group_off(GRP_OOM))
        return 0;
    u64 task = ctx->args[0];
    struct ev_oom e = {};
    fill_hdr_task(&e.hdr, EV_OOM_KILL, task);
    e.victim_pid = e.hdr.pid;
    __builtin_memcpy(e.victim_comm, e.hdr.comm, sizeof(e.victim_comm));
    u64 mm = rd_u64(task, OFF_TASK_MM);
    e.total_vm_kb = rd_u64(mm, OFF_MM_TOTAL_VM) * PAGE_KB;
    e.anon_rss_kb = mm_counter_kb(mm, MM_ANONPAGES);
    e.file_rss_kb = mm_counter_kb(mm, MM_FILEPAGES);
    e.shmem_rss_kb = mm_counter_kb(mm, MM_SHMEMPAGES);
    e.pgtables_kb = rd_u64(mm, OFF_MM_PGTABLES_BYTES) >> 10;
    e.oom_score_adj = (s16)rd_u16(rd_u64(task, OFF_TASK_SIGNAL), OFF_SIGNAL_OOM_SCORE_ADJ);
    emit(ctx, &e, sizeof(e), EV_OOM_KILL);
    return 0;
}
