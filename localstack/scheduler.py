"""The local EventBridge Scheduler: fires the schedules stored in moto's Scheduler as EventBridge Scheduler would.

    python scheduler.py PORT [--frozen]   (prints `listening on 127.0.0.1:PORT`, then serves until killed)

Every second it reads the ENABLED schedules from moto (AWS_ENDPOINT_URL) and fires each occurrence that fell due
since the last look: `cron(...)` expressions (evaluated by croniter in the schedule's time zone, daylight-saving
changes included: occurrences are computed in local wall time, then placed in the zone) and `rate(...)`
expressions, inside the schedule's start and end dates. A firing invokes the target function through the Lambda
Invoke API (AWS_ENDPOINT_URL_LAMBDA) with the target's Input, `<aws.scheduler.scheduled-time>`,
`<aws.scheduler.schedule-arn>`, `<aws.scheduler.execution-id>` and `<aws.scheduler.attempt-number>` substituted.

The test clock: the scheduler's clock is the wall clock plus an offset, and it runs forward at wall speed
(`--frozen`: it stands still, and only the calls below fire; the test suite runs it so, so that the many
schedules its tests create do not fire on the wall clock in the middle of other tests).
    POST /clock {"now": "2026-12-06T00:00:00Z"}                  sets the clock, firing nothing in between;
    POST /clock {"now": "...", "fire": true}                     moves it, firing every occurrence due on the way
                                                                  (in time order, each firing answered first);
    POST /fire {"schedules": ["batch-export-…"], "after": T0, "until": T1}
                                                                  fires those schedules' occurrences in (T0, T1]
                                                                  now, as the clock would have (disabled ones and
                                                                  dates outside their start and end, never);
    GET  /clock                                                   {"now": ...};
    GET  /firings                                                 every firing so far: schedule, scheduled time,
                                                                  the target's answer.
Not reproduced: flexible time windows (only OFF), retries of a failed invocation, dead-letter queues, one-time
`at(...)` schedules, targets other than Lambda functions.
"""
import json
import os
import re
import sys
import threading
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import boto3
from croniter import croniter

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 9057
FROZEN = "--frozen" in sys.argv
LAMBDA = os.environ["AWS_ENDPOINT_URL_LAMBDA"].rstrip("/")
scheduler = boto3.client("scheduler", region_name=os.environ.get("AWS_REGION", "us-east-1"))
lock = threading.RLock()
offset = timedelta(0)
last_look = None  # the scheduler time up to which every occurrence has been fired
firings = []


frozen_at = datetime.now(timezone.utc)


def now():
    return (frozen_at if FROZEN else datetime.now(timezone.utc)) + offset


def iso(t):
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def aws_cron_to_croniter(expression):
    """`m h dom mon dow year` (AWS: `?` for any, days of the week 1-7 from Sunday) as croniter's 5 fields, and
    the year field."""
    fields = expression.split()
    if len(fields) != 6:
        raise ValueError(f"not an AWS cron expression: {expression}")
    minute, hour, dom, month, dow, year = fields
    dom, dow = ("*" if dom == "?" else dom), ("*" if dow == "?" else dow)
    # AWS counts days of the week 1-7 from Sunday, croniter 0-6; `#n` (the nth weekday) keeps its n.
    dow = re.sub(r"(?<![#\d])(\d)", lambda m: str(int(m.group(1)) - 1), dow)
    return f"{minute} {hour} {dom} {month} {dow}", year


def occurrences(schedule, after, until):
    """The firing times of a schedule in (after, until], in UTC, inside its start and end dates."""
    expression = schedule["ScheduleExpression"]
    start, end = schedule.get("StartDate"), schedule.get("EndDate")
    after = max(after, start - timedelta(microseconds=1)) if start else after
    until = min(until, end) if end else until
    out = []
    if expression.startswith("cron("):
        spec, year = aws_cron_to_croniter(expression[5:-1])
        zone = ZoneInfo(schedule.get("ScheduleExpressionTimezone") or "UTC")
        # Wall time in the zone, then placed in it: croniter's own zone arithmetic misplaces days across a DST
        # change.
        local = after.astimezone(zone).replace(tzinfo=None)
        iterator = croniter(spec, local)
        while True:
            t = iterator.get_next(datetime).replace(tzinfo=zone).astimezone(timezone.utc)
            if t > until:
                break
            if t > after and (year in ("*", "?") or str(t.year) in year.split(",")):
                out.append(t)
    elif expression.startswith("rate("):
        amount, unit = expression[5:-1].split()
        step = timedelta(**{unit.rstrip("s") + "s": int(amount)})
        t = schedule.get("StartDate") or schedule["CreationDate"]
        while t <= after:
            t += step
        while t <= until:
            out.append(t)
            t += step
    return out


def schedules(names=None):
    """The ENABLED schedules (of those named, when `names` is given)."""
    out = []
    for page in scheduler.get_paginator("list_schedules").paginate():
        for summary in page["Schedules"]:
            if names is not None and summary["Name"] not in names:
                continue
            detail = scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
            if detail.get("State") == "ENABLED":
                out.append(detail)
    return out


def fire(schedule, scheduled):
    target = schedule["Target"]
    text = target.get("Input", "{}")
    for name, value in {
        "scheduled-time": iso(scheduled),
        "schedule-arn": schedule["Arn"],
        "execution-id": str(uuid.uuid4()),
        "attempt-number": "1",
    }.items():
        text = text.replace(f"<aws.scheduler.{name}>", value)
    function = target["Arn"].split(":function:")[-1].split(":")[0]
    request = urllib.request.Request(
        f"{LAMBDA}/2015-03-31/functions/{function}/invocations", data=text.encode(), method="POST",
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status, answer = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        status, answer = e.code, e.read().decode()
    except Exception as e:  # the function endpoint is down: the firing is lost, as a failed delivery would be
        status, answer = 0, str(e)
    record = {"schedule": schedule["Name"], "group": schedule["GroupName"], "scheduled_time": iso(scheduled),
              "status": status, "answer": answer}
    firings.append(record)
    print(json.dumps(record), flush=True)
    return record


def fire_between(after, until, names=None):
    """Fires every occurrence in (after, until] of the ENABLED schedules (those named), in time order; returns
    the firings."""
    due = []
    for schedule in schedules(names):
        due.extend((t, schedule["Name"], schedule) for t in occurrences(schedule, after, until))
    return [fire(schedule, t) for t, _, schedule in sorted(due, key=lambda d: (d[0], d[1]))]


def fire_due(until):
    """Fires every occurrence since the last look, up to `until`."""
    global last_look
    with lock:
        if last_look is not None and until > last_look:
            fire_between(last_look, until)
        last_look = until if last_look is None else max(last_look, until)


def ticker():
    while not FROZEN:
        try:
            fire_due(now())
        except Exception as e:  # moto restarting, say: look again next second
            print(f"scheduler: {e}", file=sys.stderr, flush=True)
        time.sleep(1)


class Control(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/clock":
            self.reply(200, {"now": iso(now())})
        elif self.path == "/firings":
            self.reply(200, firings)
        else:
            self.reply(404, {"error": self.path})

    def do_POST(self):
        global offset, last_look
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        time_of = lambda key: datetime.fromisoformat(body[key].replace("Z", "+00:00"))
        if self.path == "/fire":
            fired = fire_between(time_of("after"), time_of("until"), set(body["schedules"]))
            return self.reply(200, fired)
        if self.path != "/clock":
            return self.reply(404, {"error": self.path})
        target = time_of("now")
        with lock:
            if body.get("fire"):
                fire_due(target)
            offset = target - (frozen_at if FROZEN else datetime.now(timezone.utc))
            last_look = target
        self.reply(200, {"now": iso(now()), "fired": len(firings)})


threading.Thread(target=ticker, daemon=True).start()
server = ThreadingHTTPServer(("127.0.0.1", PORT), Control)
print(f"listening on 127.0.0.1:{PORT}", flush=True)
server.serve_forever()
