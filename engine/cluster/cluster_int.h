/* engine/cluster/cluster_int.h - internals of engine/cluster (the driver's backend over
 * executor processes): the protocol it speaks with them (engine/executor/protocol.h). */
#ifndef EMBER_CLUSTER_INT_H
#define EMBER_CLUSTER_INT_H

#include "engine/cluster/cluster.h"
#include "engine/executor/protocol.h"

#endif /* EMBER_CLUSTER_INT_H */
