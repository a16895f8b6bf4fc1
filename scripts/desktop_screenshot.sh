#!/usr/bin/env bash
# Make docs/screenshots/desktop.png: t2v-shapes served on :8765, the desktop app under Xvfb :77, driven by xdotool.
set -e
cd "$(dirname "$0")/.."; rm -f /tmp/shot.json
export T2V_HOME=/tmp/shot-home; rm -rf $T2V_HOME; mkdir -p $T2V_HOME
Xvfb :77 -screen 0 1280x960x24 -nolisten tcp & XPID=$!
sleep 1
.venv/bin/t2v serve --port 8765 --model t2v-shapes > /tmp/shot-serve.log 2>&1 & SPID=$!
for i in $(seq 120); do curl -sf http://127.0.0.1:8765/healthz >/dev/null && break; sleep 0.5; done
# one finished job first, so the history has something
curl -s -X POST http://127.0.0.1:8765/v1/videos -H 'content-type: application/json' -d '{"prompt":"a red circle moving right","seed":3}' > /dev/null
DISPLAY=:77 T2V_DESKTOP_REPORT=/tmp/shot.json .venv/bin/t2v desktop --server http://127.0.0.1:8765 --downloads /tmp/shot-clips > /tmp/shot-app.log 2>&1 & APID=$!
for i in $(seq 100); do grep -q '"ready": true' /tmp/shot.json 2>/dev/null && break; sleep 0.3; done
PX=$(python3 -c "import json;b=json.load(open('/tmp/shot.json'))['boxes']['prompt'];print(b[0]+b[2]//2, b[1]+b[3]//2)")
GX=$(python3 -c "import json;b=json.load(open('/tmp/shot.json'))['boxes']['generate'];print(b[0]+b[2]//2, b[1]+b[3]//2)")
DISPLAY=:77 xdotool mousemove $PX click 1
DISPLAY=:77 xdotool type --delay 10 "a blue square moving down"
DISPLAY=:77 xdotool mousemove $GX click 1
for i in $(seq 200); do grep -q '"playing": true' /tmp/shot.json 2>/dev/null && break; sleep 0.3; done
sleep 1.3
DISPLAY=:77 xdotool mousemove 1200 900
.venv/bin/python -c "
import json; from PIL import ImageGrab
x,y,w,h = json.load(open('/tmp/shot.json'))['boxes']['window']
ImageGrab.grab(bbox=(x,y,x+w,y+h), xdisplay=':77').save('docs/screenshots/desktop.png', optimize=True)
"
kill $APID $SPID; sleep 1; kill $XPID
