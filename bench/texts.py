"""Bench texts: ordinary English prose written for the bench, varied per trial.

Every trial gets text the daemon has not seen in this run (cold cache): short
trials take distinct sentences, medium ones distinct sentence combinations, long
ones the paragraphs in a rotated order with a trial-numbered opening line.
"""

from __future__ import annotations

SHORT = [
    "The kettle is boiling again.",
    "Please close the garden gate.",
    "Your build finished just now.",
    "Three new messages are waiting.",
    "The train leaves at half past.",
    "Rain is expected after lunch.",
    "Remember to water the ferns.",
    "The meeting moved to Thursday.",
    "All tests passed on the branch.",
    "Dinner will be ready soon.",
    "The printer ran out of paper.",
    "Your parcel is at the door.",
    "Traffic is light on the bridge.",
    "The oven has finished preheating.",
    "A new version is available.",
    "The cat wants to go outside.",
    "Backup completed without errors.",
    "Lights out in ten minutes.",
    "The battery is almost empty.",
    "Someone is ringing the bell.",
    "The library closes at six.",
    "Tea is steeping in the pot.",
    "The file was saved to disk.",
    "Snow is falling on the hills.",
    "The download is halfway done.",
    "Check the spelling on page two.",
    "The bus is running late today.",
    "Your timer has gone off.",
    "The river rose overnight.",
    "Bread is cooling on the rack.",
]

SENTENCES = [
    "The old lighthouse stood at the edge of the harbour, its white paint peeling in the "
    "salt wind.",
    "Every evening the keeper climbed the spiral stairs and polished the great lens until "
    "it gleamed.",
    "Fishing boats came home at dusk, their engines coughing as they rounded the breakwater.",
    "Children gathered on the pier to watch the nets being emptied into wooden crates.",
    "A baker on the corner sold warm rolls to anyone who was awake before sunrise.",
    "On market days the square filled with stalls selling cheese, honey and knitted scarves.",
    "The schoolteacher rang a brass bell at eight o'clock, and the lanes went quiet.",
    "In winter the ferry ran only twice a week, and letters arrived in bundles.",
    "Most people in the village knew the tides better than they knew the calendar.",
    "When storms came, shutters banged all night and the church roof lost a few tiles.",
    "The postmistress kept a ledger of every parcel, written in careful green ink.",
    "Tourists arrived each summer with maps that never quite matched the winding streets.",
    "Behind the chapel a narrow path climbed through gorse to the top of the cliffs.",
    "From there you could see three islands on a clear day, and sometimes a fourth.",
    "The doctor travelled by bicycle, with a leather bag strapped behind the saddle.",
    "At the harbour office a barometer hung beside a faded photograph of the lifeboat crew.",
]

PARAGRAPHS = [
    "The town woke slowly that morning. A thin fog lay over the harbour, and the gulls, "
    "usually so loud, seemed to have agreed to wait until it lifted. Down by the slipway, two "
    "fishermen argued softly about whether the weather would turn, while a dog watched them "
    "with the patience of an animal that has heard the same argument many times before.",
    "By nine o'clock the fog had thinned enough to show the outline of the breakwater. The "
    "baker had already sold most of his rolls, and the smell of fresh bread drifted up the "
    "hill towards the school. Inside the classroom, the teacher wrote the date on the board "
    "and asked, as she did every day, who could tell her the time of the next high tide.",
    "Nobody remembered exactly when the lighthouse had last failed. The keeper liked to say "
    "that it had never failed at all, only paused to think. He kept a notebook in which he "
    "recorded every ship that passed, its direction, and the state of the sea, and in thirty "
    "years he had filled eleven notebooks, all of them stacked neatly beside his bed.",
    "In the afternoon the wind came round to the west and the fog vanished as if it had never "
    "been there. The water turned a deep green, then blue, and the boats that had stayed in "
    "harbour all morning began, one by one, to leave. Their wakes crossed and recrossed until "
    "the whole bay looked like a page of careful handwriting.",
    "The postmistress closed her counter at four, counted the day's stamps, and walked home "
    "along the sea wall. She liked this part of the day best. The light was soft, the tourists "
    "had gone back to their hotels, and the only sounds were the waves and, now and then, the "
    "distant bell of the buoy that marked the rocks beyond the point.",
    "Evening brought the fishing fleet back, heavy with the catch. People came down to the "
    "quay to help unload, to buy fish straight from the crates, or simply to talk. Someone had "
    "brought a radio, and an old song drifted across the water while the sky over the islands "
    "turned from gold to violet and finally to a deep and starry black.",
    "Later, when the village was asleep, the keeper climbed the stairs one last time. He "
    "lit the lamp, checked the clockwork that turned the lens, and sat for a while at the small "
    "window, watching the beam sweep across the dark water. Somewhere out there a ship was "
    "passing, and he wrote its name in the notebook, just as he always did.",
    "Years afterwards, visitors would ask about the lighthouse and the man who kept it. The "
    "answers were always a little different, as stories are, but everyone agreed on one thing: "
    "for as long as he was there, the light had never gone out, and no ship had ever been lost "
    "on the rocks below the point.",
]


def short(trial: int) -> str:
    """~20–40 characters, a different sentence per trial."""
    return SHORT[trial % len(SHORT)]


def medium(trial: int) -> str:
    """~150–250 characters: two distinct sentences, a different pair per trial."""
    n = len(SENTENCES)
    first = trial % n
    second = (first + 1 + (trial // n) % (n - 1)) % n
    text = f"{SENTENCES[first]} {SENTENCES[second]}"
    while len(text) < 150:
        first = (first + 3) % n
        text = f"{text} {SENTENCES[first]}"
    return text[:250].rsplit(" ", 1)[0] if len(text) > 250 else text


def long(trial: int) -> str:
    """1,500+ characters: several paragraphs, rotated, with a trial-numbered opening."""
    k = trial % len(PARAGRAPHS)
    order = PARAGRAPHS[k:] + PARAGRAPHS[:k]
    opening = f"Chapter {trial + 1}."
    return "\n\n".join([opening, *order[:5]])


def first_sentence_pair(trial: int) -> tuple[str, str]:
    """A ~30-character and a ~300-character first sentence (TTFA vs sentence length)."""
    short_one = SHORT[(trial + len(SHORT) // 2) % len(SHORT)]  # not the short preset's first
    parts = [SENTENCES[(trial + i) % len(SENTENCES)].rstrip(".") for i in range(3)]
    sentence = ", and ".join([parts[0], *(p[0].lower() + p[1:] for p in parts[1:])]) + "."
    return short_one, sentence


PRESETS = {"short": short, "medium": medium, "long": long}


# Plain sentences no part of kokorod was tuned on (the window plan, the norm tables, the
# tests): what bench/prosody.py --held-out compares with one-shot kokoro-onnx.
HELD_OUT = [
    "The ferry was cancelled, so we drove the long way around the lake.",
    "Her grandmother kept every letter in a tin box under the stairs.",
    "Nobody noticed the clock had stopped until the guests began to leave.",
    "We planted tomatoes along the fence, and the neighbours laughed at us.",
    "A small dog followed the postman from one end of the street to the other.",
    "He fixed the bicycle chain with a paper clip and a lot of patience.",
    "The concert started late because the piano had not been tuned.",
    "Bring a warm coat; the wind on the cliffs is stronger than you think.",
    "After dinner they played cards by candlelight until the power came back.",
    "The old map showed a road that no longer existed.",
    "She measured the flour twice, then decided to bake bread instead of cake.",
    "Every spring the swallows return to the same barn on the hill.",
    "The students waited in silence while the teacher read out the results.",
    "Turn the handle slowly, or the water will spray across the kitchen floor.",
]
