/*  qkv_quorum.c - the commit rule: the write_quorum-th highest follower
    match index (see qkv_quorum.h). Follower counts are small (at most
    QKV_MAX_FOLLOWERS), so a copy and an insertion sort are the whole cost.
*/
#include "qkv_quorum.h"

#include "qkv_config.h"
#include <assert.h>

uint64_t qkv_quorum_commit_index(const uint64_t *match, size_t follower_count,
                                 size_t write_quorum, uint64_t leader_last,
                                 uint64_t current) {
    assert(write_quorum <= follower_count);
    assert(follower_count <= QKV_MAX_FOLLOWERS);
    uint64_t rule = leader_last;
    if (write_quorum > 0) {
        uint64_t sorted[QKV_MAX_FOLLOWERS];
        for (size_t i = 0; i < follower_count; i++) {
            size_t j = i;
            for (; j > 0 && sorted[j - 1] < match[i]; j--)
                sorted[j] = sorted[j - 1]; /* descending */
            sorted[j] = match[i];
        }
        rule = sorted[write_quorum - 1];
        if (rule > leader_last)
            rule = leader_last;
    }
    return rule > current ? rule : current;
}
