/* SPDX-License-Identifier: Apache-2.0 */
/* sdnotify.h: the systemd notification protocol (sd_notify) without libsystemd: one datagram per
 * state change to the AF_UNIX socket named by $NOTIFY_SOCKET (a path, or an abstract name written
 * with a leading '@'). Without $NOTIFY_SOCKET every call is a no-op, so the daemon behaves the
 * same outside systemd. */
#ifndef NAFTIKOD_SDNOTIFY_H
#define NAFTIKOD_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>

/* Send state (e.g. "READY=1", or several "KEY=VALUE" lines joined by '\n') to $NOTIFY_SOCKET.
 * Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset or empty, -1 on failure (errno set:
 * EINVAL for a malformed socket name, else the socket error). Thread-safe. */
int nk_sd_notify(const char *state);
/* "RELOADING=1\nMONOTONIC_USEC=<now on CLOCK_MONOTONIC in microseconds>", as systemd's
 * Type=notify-reload expects. Same returns as nk_sd_notify(). */
int nk_sd_notify_reloading(void);
/* The watchdog period asked for by systemd: true and *usec set when $WATCHDOG_USEC is a positive
 * integer and $WATCHDOG_PID is unset or equals getpid(); false otherwise (no watchdog). */
bool nk_sd_watchdog(uint64_t *usec);

#endif
