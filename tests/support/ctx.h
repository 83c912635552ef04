/* tests/support/ctx.h - the context most unit tests start from: ember.master = MASTER and
 * nothing else; a context that cannot be made fails the calling test with its error. */
#ifndef EMBER_TESTS_SUPPORT_CTX_H
#define EMBER_TESTS_SUPPORT_CTX_H

#include "engine/ember.h"

em_context *em_test_ctx_new(const char *master);

#endif
