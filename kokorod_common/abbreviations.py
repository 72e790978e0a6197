"""The abbreviations the daemon reads in full, and which of them never end a sentence: one
table for the English cleanup (kokorod/synth/text/english.py) and the sentence splitter
(kokorod_common/sentences.py), so the client's sentences on the text as written (`-i`,
subtitle cues) fall where the daemon's fall on the text as spoken."""

from __future__ import annotations

# Abbreviations read in full. A trailing "." is part of the match (and case matters).
ABBREVIATIONS: dict[str, str] = {
    "Mr.": "Mister", "Mrs.": "Missus", "Ms.": "Miz", "Dr.": "Doctor", "Prof.": "Professor",
    "Jr.": "Junior", "Sr.": "Senior", "vs.": "versus", "vs": "versus", "etc.": "et cetera",
    "e.g.": "for example", "i.e.": "that is", "approx.": "approximately", "cf.": "compare",
    "Dept.": "Department", "Inc.": "Incorporated", "Ltd.": "Limited", "Corp.": "Corporation",
    "Mt.": "Mount", "Jan.": "January", "Feb.": "February", "Mar.": "March", "Apr.": "April",
    "Aug.": "August", "Sep.": "September", "Sept.": "September", "Oct.": "October",
    "Nov.": "November", "Dec.": "December", "Mon.": "Monday", "Tue.": "Tuesday",
    "Wed.": "Wednesday", "Thu.": "Thursday", "Fri.": "Friday", "Sat.": "Saturday",
    "Sun.": "Sunday", "a.m.": "A M", "p.m.": "P M", "w/": "with", "w/o": "without",
    "Approx.": "Approximately", "Ave.": "Avenue", "Rd.": "Road", "Fig.": "Figure",
}

# Read before what they introduce (a name, an example, the other side): their full stop
# never ends a sentence. The others' does when a capital letter follows, or nothing does.
NEVER_END = frozenset({"Mr.", "Mrs.", "Ms.", "Dr.", "Prof.", "Mt.", "e.g.", "i.e.", "vs.",
                       "cf."})
