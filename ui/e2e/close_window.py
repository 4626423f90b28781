"""Close an X11 window as its close button would: send it WM_DELETE_WINDOW
(the ICCCM message a window manager sends; Xvfb runs none). python-xlib.

    close_window.py TITLE    -> exit 0 once a message was sent, 1 if no window has that title
"""
import sys

from Xlib import X, display, protocol

title = sys.argv[1]
screen = display.Display()
root = screen.screen().root
wm_protocols = screen.intern_atom("WM_PROTOCOLS")
wm_delete = screen.intern_atom("WM_DELETE_WINDOW")


def windows(window, depth=0):
    yield window
    if depth < 3:
        try:
            children = window.query_tree().children
        except Exception:  # it went away meanwhile (a menu, a tooltip)
            return
        for child in children:
            yield from windows(child, depth + 1)


sent = 0
for window in windows(root):
    try:
        if window.get_wm_name() == title and wm_delete in (window.get_wm_protocols() or []):
            event = protocol.event.ClientMessage(window=window, client_type=wm_protocols, data=(32, [wm_delete, X.CurrentTime, 0, 0, 0]))
            window.send_event(event, event_mask=X.NoEventMask)
            sent += 1
    except Exception:  # a window that went away meanwhile
        continue
screen.sync()
sys.exit(0 if sent else 1)
