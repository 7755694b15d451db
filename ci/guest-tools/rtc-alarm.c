// rtc-alarm [DEVICE [SECONDS]]: sets the RTC's wake alarm SECONDS (default 2) ahead through
// Linux's RTC ioctl interface (RTC_RD_TIME, then RTC_WKALM_SET with enabled = 1, which
// turns the alarm interrupt on) on DEVICE (default /dev/rtc0), and blocks in read() until
// the driver reports the interrupt (select() bounds the wait at 10 s). Prints
//   SWIFTLET-RTC-ALARM fired after=S.ss s data=0xN alarm=T rtc=T'
// (S from CLOCK_MONOTONIC; T the alarm's RTC time, T' the RTC's time when it fired) or
//   SWIFTLET-RTC-ALARM error=WHAT
// and exits 0 or 1. busybox's rtcwake -m no returns at once, so the guest needs this.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/rtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

static int fail(const char *what) {
    printf("SWIFTLET-RTC-ALARM error=%s:%s\n", what, strerror(errno));
    return 1;
}

static double monotonic(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static time_t rtc_seconds(const struct rtc_time *rtc) {
    struct tm tm = {
        .tm_sec = rtc->tm_sec, .tm_min = rtc->tm_min, .tm_hour = rtc->tm_hour,
        .tm_mday = rtc->tm_mday, .tm_mon = rtc->tm_mon, .tm_year = rtc->tm_year,
    };
    return timegm(&tm);
}

int main(int argc, char **argv) {
    const char *device = argc > 1 ? argv[1] : "/dev/rtc0";
    int seconds = argc > 2 ? atoi(argv[2]) : 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    int fd = open(device, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail("open");
    // The clock starts before the RTC is read: the alarm then comes at least 1 s after it.
    double start = monotonic();
    struct rtc_time now;
    if (ioctl(fd, RTC_RD_TIME, &now) < 0) return fail("RTC_RD_TIME");
    time_t alarm_at = rtc_seconds(&now) + seconds;
    struct tm tm;
    gmtime_r(&alarm_at, &tm);
    struct rtc_wkalrm alarm;
    memset(&alarm, 0, sizeof alarm);
    alarm.enabled = 1;
    alarm.time.tm_sec = tm.tm_sec;
    alarm.time.tm_min = tm.tm_min;
    alarm.time.tm_hour = tm.tm_hour;
    alarm.time.tm_mday = tm.tm_mday;
    alarm.time.tm_mon = tm.tm_mon;
    alarm.time.tm_year = tm.tm_year;
    alarm.time.tm_wday = alarm.time.tm_yday = alarm.time.tm_isdst = -1;
    if (ioctl(fd, RTC_WKALM_SET, &alarm) < 0) return fail("RTC_WKALM_SET");
    fd_set readable;
    FD_ZERO(&readable);
    FD_SET(fd, &readable);
    struct timeval limit = {.tv_sec = 10};
    int ready = select(fd + 1, &readable, NULL, NULL, &limit);
    if (ready < 0) return fail("select");
    if (ready == 0) {
        printf("SWIFTLET-RTC-ALARM error=no alarm within 10 s (alarm=%lld)\n", (long long)alarm_at);
        return 1;
    }
    unsigned long data = 0;
    if (read(fd, &data, sizeof data) != (ssize_t)sizeof data) return fail("read");
    double after = monotonic() - start;
    struct rtc_time then;
    if (ioctl(fd, RTC_RD_TIME, &then) < 0) return fail("RTC_RD_TIME");
    ioctl(fd, RTC_AIE_OFF, 0);
    printf("SWIFTLET-RTC-ALARM fired after=%.2f s data=0x%lx alarm=%lld rtc=%lld\n", after, data,
           (long long)alarm_at, (long long)rtc_seconds(&then));
    return 0;
}
