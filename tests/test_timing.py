"""The timing contract (`imcflow.sw.timing`): the window schedule's incremental rules, which both
`window_schedule` (measured on the RTL window source in test_im2col.py) and the performance
model's window stages (`imcflow.sw.perf`) run."""

from __future__ import annotations

from imcflow.sw.timing import accept_pixels, read_windows, window_rules, window_schedule


def test_window_rules_by_hand():
    # 3x3 input, 2x2 windows: they need pixels 4, 5, 7, 8 and keep 0, 1, 3, 4 (the oldest pixel
    # they or a later one read); the line buffer holds 5 pixels, so pixel i waits for the reads
    # of the windows whose kept pixel is i - 5 or older.
    need, slot = window_rules(3, 3, 2, strategy="line", images=2)
    assert need == [4, 5, 7, 8, 13, 14, 16, 17]
    assert slot == [0, 0, 0, 0, 0, 1, 2, 2, 3, 4, 4, 4, 4, 4, 5, 6, 6, 7]
    # frame: every window needs its image's last pixel; image n overwrites image n - 2
    need, slot = window_rules(3, 3, 2, strategy="frame", images=3)
    assert need == [8] * 4 + [17] * 4 + [26] * 4
    assert slot == [0] * 18 + [4] * 9


def test_accept_pixels_waits_for_the_producer_and_the_reads_that_free_a_slot():
    take = []
    # pixel 2 overwrites what window 0 needs: it waits for that read, and a cycle more
    assert accept_pixels(take, [0, 0, 1], [0, 0, 0], 1, [], 1)
    assert take == [1, 2]
    assert not accept_pixels(take, [0, 0, 1], [0, 0, 0], 1, [], 1)
    assert accept_pixels(take, [0, 0, 1], [0, 0, 0], 1, [7], 1)
    assert take == [1, 2, 8]
    take = []  # the producer's beats, `link` cycles later, one per cycle at most
    accept_pixels(take, [0, 0, 0], [3, 3, 9], 2, [], 1)
    assert take == [5, 6, 11]


def test_read_windows_waits_for_the_pixel_and_the_output_register():
    read, hand = [], []
    assert read_windows(read, [0, 4, 5], [1, 2], hand, 1)
    assert read == [4]  # window 1 waits for window 0 to leave the output register
    hand.append(9)
    assert read_windows(read, [0, 4, 5], [1, 2], hand, 1)
    assert read == [4, 9]
    read, hand = [], []  # two registers: window 2 waits for window 0's output handshake
    assert read_windows(read, [0, 1, 2], [0, 1, 2], hand, 2)
    assert read == [0, 1]
    hand.append(6)
    read_windows(read, [0, 1, 2], [0, 1, 2], hand, 2)
    assert read == [0, 1, 6]


def test_window_schedule_by_hand():
    # 4x4 input, 3x3 windows, stride 1: windows need pixels 10, 11, 14, 15; the line buffer
    # holds 2 rows + 3 = 11 pixels, so pixel 11 waits for window 0's read (cycle 10) and pixel
    # 12 for window 1's; each window is valid a cycle after its read.
    pixels, windows = window_schedule(4, 4, 3, strategy="line")
    assert pixels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert windows.tolist() == [11, 12, 15, 16]
    # 2x2 input, 3x3 windows with padding 1: each of the 4 windows needs the whole image, which
    # the 4-word line buffer holds; image 1's first pixel waits for the read of image 0's last
    # window (cycle 6), and image 1's windows for its last pixel (cycle 10)
    pixels, windows = window_schedule(2, 2, 3, 1, 1, strategy="line", images=2)
    assert pixels.tolist() == [0, 1, 2, 3, 7, 8, 9, 10]
    assert windows.tolist() == [4, 5, 6, 7, 11, 12, 13, 14]
    # frame, 9 windows per 4-pixel image: image 2 overwrites image 0, so it waits for image 0's
    # last read (cycle 11); the windows of an image wait for its last pixel and the previous read
    pixels, windows = window_schedule(2, 2, 2, 1, 1, strategy="frame", images=3)
    assert pixels.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15]
    assert windows.tolist() == list(range(4, 13)) + list(range(13, 22)) + list(range(22, 31))
