#include "train_progress.h"
#include "sc_clock.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int columns(FILE *f)
{
    struct winsize ws;
    if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

void sc_progress_init(sc_progress *p, FILE *f, int bar, int64_t every)
{
    memset(p, 0, sizeof *p);
    p->f = f;
    p->bar = bar;
    p->every = every > 0 ? every : 1;
}

const char *sc_progress_duration(double s, char *buf, size_t len)
{
    if (!(s >= 0) || s > 1e8) {
        snprintf(buf, len, "?");
        return buf;
    }
    long t = (long)ceil(s);
    if (t >= 3600)
        snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
    return buf;
}

static void draw_bar(sc_progress *p, const sc_progress_status *s)
{
    char left[64], right[160], eta[32], rate[32];
    int width = columns(p->f) - 1; /* the last column would wrap on some terminals */
    snprintf(left, sizeof left, "epoch %lld/%lld ", (long long)s->epoch, (long long)s->epochs);
    if (s->views_per_s > 0)
        snprintf(rate, sizeof rate, "%.0f views/s", s->views_per_s);
    else
        snprintf(rate, sizeof rate, "- views/s");
    snprintf(right, sizeof right, " %lld/%lld  loss %.4f  %s  ETA %s", (long long)s->epoch_step,
             (long long)s->epoch_steps, s->loss, rate, sc_progress_duration(s->eta_s, eta, sizeof eta));
    int room = width - (int)strlen(left) - (int)strlen(right) - 2;
    char bar[256];
    if (room >= 10) {
        if (room > (int)sizeof bar - 1)
            room = (int)sizeof bar - 1;
        double frac = s->epoch_steps > 0 ? (double)s->epoch_step / (double)s->epoch_steps : 0;
        int full = (int)(frac * room);
        for (int i = 0; i < room; i++)
            bar[i] = i < full ? '=' : i == full ? '>' : ' ';
        if (full >= room)
            bar[room - 1] = '=';
        bar[room] = 0;
        fprintf(p->f, "\r%s[%s]%s\033[K", left, bar, right);
    } else {
        /* A narrow terminal: the numbers alone, cut to the width. */
        char line[256];
        snprintf(line, sizeof line, "%s%s", left, right);
        if (width > 0 && width < (int)sizeof line)
            line[width] = 0;
        fprintf(p->f, "\r%s\033[K", line);
    }
    fflush(p->f);
    p->drawn = 1;
}

static void plain_line(sc_progress *p, const sc_progress_status *s)
{
    char eta[32], rate[32];
    if (s->views_per_s > 0)
        snprintf(rate, sizeof rate, "%.0f views/s", s->views_per_s);
    else
        snprintf(rate, sizeof rate, "- views/s");
    fprintf(p->f, "step %lld/%lld  epoch %lld/%lld (%lld/%lld)  loss %.4f  lr %.3g  %s  data wait %.0f%%  ETA %s\n",
            (long long)s->step, (long long)s->total, (long long)s->epoch, (long long)s->epochs,
            (long long)s->epoch_step, (long long)s->epoch_steps, s->loss, s->lr, rate,
            100 * s->wait_frac, sc_progress_duration(s->eta_s, eta, sizeof eta));
    fflush(p->f);
}

void sc_progress_update(sc_progress *p, const sc_progress_status *s, int force)
{
    if (p->bar) {
        double t = sc_now_seconds();
        if (force || !p->drawn || t - p->last >= 0.1) {
            draw_bar(p, s);
            p->last = t;
        }
    } else if (s->step % p->every == 0 || (force && s->step == s->total)) {
        plain_line(p, s);
    }
}

void sc_progress_message(sc_progress *p, const char *fmt, ...)
{
    if (p->drawn)
        fputs("\r\033[K", p->f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->f, fmt, ap);
    va_end(ap);
    fputc('\n', p->f);
    fflush(p->f);
    /* The bar comes back with the next update. */
    p->drawn = 0;
}

void sc_progress_status_line(sc_progress *p, const char *fmt, ...)
{
    if (!p->bar)
        return;
    fputs("\r", p->f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(p->f, fmt, ap);
    va_end(ap);
    fputs("\033[K", p->f);
    fflush(p->f);
    p->drawn = 1;
}

void sc_progress_end(sc_progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", p->f);
        fflush(p->f);
    }
    p->drawn = 0;
}
