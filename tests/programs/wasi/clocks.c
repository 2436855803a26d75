/* Clocks: the monotonic clock goes forward, the real-time clock is after 2020, and sleeping
 * (nanosleep, clock_nanosleep with an absolute deadline, poll with a timeout: all
 * poll_oneoff clock subscriptions) takes at least as long as asked. */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

static int64_t ns(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static const char *ok(int cond) { return cond ? "ok" : "FAILED"; }

int main(void) {
    int64_t t0 = ns(CLOCK_MONOTONIC);
    int64_t t1 = ns(CLOCK_MONOTONIC);
    printf("monotonic does not go back: %s\n", ok(t1 >= t0));

    struct timespec res;
    printf("monotonic resolution: %s\n",
           ok(clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0));

    time_t now = time(NULL);
    printf("realtime after 2020: %s\n", ok(now > 1577836800));

    struct timespec d = {0, 30 * 1000000};
    int64_t before = ns(CLOCK_MONOTONIC);
    nanosleep(&d, NULL);
    int64_t slept = ns(CLOCK_MONOTONIC) - before;
    printf("nanosleep 30 ms: %s\n", ok(slept >= 30000000));

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += 20 * 1000000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000;
    }
    int r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL);
    int64_t after = ns(CLOCK_MONOTONIC);
    int64_t target = (int64_t)deadline.tv_sec * 1000000000 + deadline.tv_nsec;
    printf("absolute sleep: %s\n", ok(r == 0 && after >= target));

    before = ns(CLOCK_MONOTONIC);
    r = poll(NULL, 0, 15);
    slept = ns(CLOCK_MONOTONIC) - before;
    printf("poll timeout 15 ms: %s\n", ok(r == 0 && slept >= 15000000));

    int64_t cpu = ns(CLOCK_PROCESS_CPUTIME_ID);
    printf("process cpu time: %s\n", ok(cpu > 0));
    return 0;
}
