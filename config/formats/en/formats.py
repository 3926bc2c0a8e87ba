"""One way to write a moment everywhere staff look: 2026-11-30 16:09 UTC (lists, change pages, the timeline).

The times are UTC (TIME_ZONE), which is what Stripe's dashboard and our logs show; the zone is written out so a
reader never has to guess. Input formats stay Django's English ones."""

DATETIME_FORMAT = "Y-m-d H:i T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = DATE_FORMAT
TIME_FORMAT = "H:i"
