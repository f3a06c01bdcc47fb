"""Words and sentences that are NOT the keyword: the "unknown" class of the bootstrap data.

A keyword spotter learns as much from what it must ignore as from the keyword. Besides common
words, the list has words that sound like common keywords ("lesson", "glisten", "listing" for
"listen"; "top", "shop", "spot" for "stop"), the command words of Google's Speech Commands,
and whole sentences (cut into 1 s windows) so that running speech does not trigger. Words that
contain the keyword (e.g. "listening" for "listen") are dropped when the data is generated.
The demo's sentence (scripts/make_demo_audio.py) is deliberately not in the list, so the demo
checks the model on a sentence it has never seen.
"""

from __future__ import annotations

_WORDS_TEXT = """
a about above across act add after again against age ago agree air all almost alone along
already also always am among and animal another answer any anything apple are area arm around
art as ask at away baby back bad bag ball bank bath be bear beautiful because bed been before
began begin behind believe below best better between big bird bit black blue board boat body
book both bottom box boy bread break bring brother brown build bus business but buy by call
came can car card care carry case cat catch cause center certain chair change check child
children city class clean clear close cold color come common complete could country course cut
dark day dead deal dear decide deep did different dinner do doctor does dog done door down draw
dream dress drink drive drop dry during each early earth easy eat edge egg eight eleven else end
enough even evening ever every example eye face fact fall family far farm fast father fear feel
few field fight fill final find fine fire first fish five floor fly follow food foot for force
forest form forward four free friend from front full fun game garden gave general get girl give
glad glass go gold good got great green ground group grow guess had hair half hand happen happy
hard has hat have he head hear heart heat heavy hello help her here high hill him his hit hold
hole home hope horse hot hour house how however huge hundred hungry idea if important in inside
into iron is island it its job join just keep key kind king kitchen knew know land language large
last late laugh lay learn leave left leg less let letter level life light like line lion list
little live long look lost lot loud love low machine made make man many map mark market matter
may me mean measure meet men middle might mile milk mind minute miss mission money month moon
more morning most mother mountain mouth move much music must my name near need never new next
nice night nine no noise north nose not note nothing notice now number ocean of off office often
oh oil old on once one only open or order other our out over own page paint paper part party pass
past pay people perhaps person picture piece place plan plant play please point poor possible
power press pretty problem pull push put question quick quiet rain ran reach read ready real
reason red remember rest right river road rock room round rule run said same sat save saw say
school sea season second see seem sell send sentence seven shape she ship shoe short should show
side simple since sing sister sit six size sleep slow small smile snow so some something song
soon sound south space speak special spell spring stand star start stay step still stone store
story street strong student study such summer sun sure surface table take talk tall teacher tell
ten than thank that the their them then there these they thing think third this those though
thought three through time tiny to today together told tomorrow too took top town tree true try
turn twelve two under until up upon us use usual very voice wait walk wall want warm was watch
water wave way we wear weather week well went were west what wheel when where which while white
who whole why wide wife will wind window winter wish with without woman wonder wood word work
world would write wrong yard year yellow yes yesterday yet you young zero
bed bird cat dog down eight five four go happy house left marvin nine no off on one right seven
sheila six three tree two up wow yes zero backward follow forward learn visual
lesson lessen glisten listing listed listless lisp lift missing mission christen piston
kitchen blister whistle thistle system distant instant lisbon boston muslin lesser lessor
top shop spot stock stab step stuff stomp strop pop chop drop hop mop stopper
hello computer alexa okay hey jarvis siri assistant activate start begin record
"""
WORDS = _WORDS_TEXT.split()

SENTENCES = [
    "what will the weather be like on the weekend",
    "please turn off the lights in the kitchen",
    "i would like a cup of coffee with milk",
    "the train to the city leaves at half past seven",
    "can you tell me the time",
    "set a timer for ten minutes",
    "my brother lives in a small town near the sea",
    "we went for a long walk in the forest yesterday",
    "the meeting has been moved to thursday afternoon",
    "how far is it to the nearest station",
    "she reads a book every night before bed",
    "the children played football in the park",
    "remind me to call my mother this evening",
    "it is going to rain later today",
    "add bread and eggs to the shopping list",
    "the quick brown fox jumps over the lazy dog",
    "open the window it is warm in here",
    "he plays the guitar in a band",
    "there are seven days in a week",
    "send a message to the team about the plan",
    "the museum is closed on mondays",
    "i lost my keys somewhere in the house",
    "turn the music down a little please",
    "our flight was delayed by two hours",
    "the soup needs a bit more salt",
    "do you know where the library is",
    "the dog barked at the postman again",
    "we should leave early to avoid traffic",
    "this lesson is about the history of science",
    "the mission was a great success",
    "he kept missing the bus every morning",
    "the stars glisten in the winter sky",
    "she is listing the things we need",
    "put the box on the top shelf",
    "the shop on the corner sells fresh fruit",
    "take the next step and keep going",
    "my phone battery is almost empty",
    "they built a new bridge across the river",
    "the teacher asked a difficult question",
    "i think we should paint the wall blue",
    "let us meet outside the cinema at eight",
    "the garden is full of flowers in spring",
    "a good night of sleep makes a big difference",
    "the report is due at the end of the month",
    "could you repeat that a little slower",
    "the water in the lake was very cold",
    "please close the door behind you",
    "we are having pasta for dinner tonight",
    "the car would not start this morning",
    "nobody knew the answer to the riddle",
]


def negative_words(keyword: str) -> list[str]:
    """The word list without the keyword and without words that contain it."""
    kw = keyword.lower().strip()
    seen: set[str] = set()
    out = []
    for w in WORDS:
        if kw in w or w in seen:
            continue
        seen.add(w)
        out.append(w)
    return out


def negative_sentences(keyword: str) -> list[str]:
    kw = keyword.lower().strip()
    return [s for s in SENTENCES if kw not in s]
