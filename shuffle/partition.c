/* shuffle/partition.c - hash and range partitioners.
 *
 * DESIGN: the hash partitioner needs only nparts, which it keeps in the `self` pointer itself
 * (a uintptr_t), so it allocates nothing and init cannot fail. The range partitioner copies
 * its bounds into one allocation and finds a key's partition by binary search: the first
 * bound >= key (bounds are inclusive upper limits). */
#include <string.h>

#include "shuffle/shuffle.h"

/* ---------------------------------------------------------------- hash */

static uint32_t hash_partition(const void *self, em_slice key)
{
    uint32_t nparts = (uint32_t)(uintptr_t)self;
    return (uint32_t)(em_hash64(key.p, key.n, 0) % nparts);
}

static const em_partitioner_ops hash_ops = {"hash", hash_partition, NULL};

void em_partitioner_hash_init(em_partitioner *p, uint32_t nparts)
{
    EM_ASSERT(nparts >= 1);
    p->ops = &hash_ops;
    p->self = (void *)(uintptr_t)nparts;
    p->nparts = nparts;
}

bool em_partitioner_is_hash(const em_partitioner *p)
{
    return p->ops == &hash_ops;
}

/* ---------------------------------------------------------------- range */

typedef struct range_part {
    uint32_t nbounds;
    bool descending;
    em_slice *bounds;      /* nbounds slices pointing into bytes */
    uint8_t *bytes;
} range_part;

static uint32_t range_partition(const void *self, em_slice key)
{
    const range_part *rp = self;
    uint32_t lo = 0, hi = rp->nbounds;   /* answer in [lo, hi]: first i with key <= b[i] */

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (em_slice_cmp(key, rp->bounds[mid]) <= 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return rp->descending ? rp->nbounds - lo : lo;
}

static void range_free(void *self)
{
    range_part *rp = self;
    if (!rp)
        return;
    em_free(rp->bounds);
    em_free(rp->bytes);
    em_free(rp);
}

static const em_partitioner_ops range_ops = {"range", range_partition, range_free};

int em_partitioner_range_init(em_partitioner *p, const em_slice *bounds, uint32_t nbounds,
                              bool descending, em_err *err)
{
    size_t total = 0;
    range_part *rp;

    if (nbounds >= EM_SHUFFLE_MAX_PARTS)
        return em_err_set(err, EM_EINVAL, "range partitioner: %u bounds (max %u)", nbounds,
                          EM_SHUFFLE_MAX_PARTS - 1);
    for (uint32_t i = 0; i < nbounds; i++) {
        if (i > 0 && em_slice_cmp(bounds[i - 1], bounds[i]) > 0)
            return em_err_set(err, EM_EINVAL, "range partitioner: bound %u is below bound %u",
                              i, i - 1);
        if (!em_size_add(total, bounds[i].n, &total))
            return em_err_set(err, EM_EINVAL, "range partitioner: bounds too large");
    }
    rp = em_calloc(1, sizeof *rp);
    if (!rp)
        return em_err_set(err, EM_ENOMEM, "range partitioner: out of memory");
    rp->nbounds = nbounds;
    rp->descending = descending;
    rp->bounds = em_calloc(nbounds ? nbounds : 1, sizeof *rp->bounds);
    rp->bytes = em_malloc(total ? total : 1);
    if (!rp->bounds || !rp->bytes) {
        range_free(rp);
        return em_err_set(err, EM_ENOMEM, "range partitioner: out of memory for %u bounds",
                          nbounds);
    }
    size_t off = 0;
    for (uint32_t i = 0; i < nbounds; i++) {
        if (bounds[i].n)
            memcpy(rp->bytes + off, bounds[i].p, bounds[i].n);
        rp->bounds[i] = em_slice_make(rp->bytes + off, bounds[i].n);
        off += bounds[i].n;
    }
    p->ops = &range_ops;
    p->self = rp;
    p->nparts = nbounds + 1;
    return 0;
}

void em_partitioner_destroy(em_partitioner *p)
{
    if (!p || !p->ops)
        return;
    if (p->ops->free)
        p->ops->free(p->self);
    p->ops = NULL;
    p->self = NULL;
}
