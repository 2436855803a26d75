/* Non-local exit from wasm code back to the host entry.
 *
 * Compiled wasm frames carry no unwind information the host could use, so a trap (from a signal
 * handler, a libcall or a failing host function) returns to the innermost host entry with
 * siglongjmp. Only wasm frames, trampolines and Rust frames that hold no values with destructors
 * are skipped; the Rust side guarantees the latter. The signal mask is not saved: the handlers are
 * installed with SA_NODEFER, so no signal is blocked when a handler jumps out. */
#include <setjmp.h>
#include <stddef.h>

int spate_catch(void (*body)(void *), void *payload, void **jmp_slot) {
    sigjmp_buf buf;
    void *volatile prev = *jmp_slot;
    if (sigsetjmp(buf, 0) == 0) {
        *jmp_slot = &buf;
        body(payload);
        *jmp_slot = prev;
        return 1;
    }
    *jmp_slot = prev;
    return 0;
}

void spate_unwind(void *jmp_buf) {
    siglongjmp(*(sigjmp_buf *)jmp_buf, 1);
}
