/*  qkv_quorum.h - the commit rule.

    The leader holds every entry it appended; an entry is committed once
    write_quorum followers hold it too. With each follower's match index
    (its latest ACK's last_index, which may go down), the commit index is
    the write_quorum-th highest match index, capped by the leader's last
    index; with write_quorum 0 it is the leader's last index. It never goes
    down. One number serves every waiting writer, as Redis's WAIT does.
*/
#ifndef QKV_QUORUM_H
#define QKV_QUORUM_H

#include <stddef.h>
#include <stdint.h>

/* Returns the commit index the rule gives now: max(current, rule). match
   has follower_count entries; write_quorum <= follower_count. */
uint64_t qkv_quorum_commit_index(const uint64_t *match, size_t follower_count,
                                 size_t write_quorum, uint64_t leader_last,
                                 uint64_t current);

#endif
