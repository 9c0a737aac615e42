"""Word lists, templates and short reviews for the behavioural test suites.

Everything here was written for this project (no third-party text). The reviews are short,
clearly polarised and review-shaped, so that a model trained on reviews can be held to them;
``{name}`` and ``{city}`` are filled in by the generators, which is what the name/place
invariance suite swaps.
"""

NOUNS = ("movie", "film", "book", "show", "series", "play", "album", "story")

POSITIVE_ADJECTIVES = (
    "good", "great", "excellent", "wonderful", "amazing", "fantastic", "brilliant",
    "enjoyable", "delightful", "superb", "lovely", "outstanding", "beautiful", "charming",
)
NEGATIVE_ADJECTIVES = (
    "bad", "terrible", "awful", "boring", "dull", "horrible", "poor", "disappointing",
    "dreadful", "mediocre", "tedious", "pointless", "annoying", "weak",
)
# Adjectives whose negation reads as clear praise ("not boring at all"); "not terrible" does not.
NEGATABLE_NEGATIVE_ADJECTIVES = ("bad", "boring", "dull", "disappointing", "tedious")
# Adjectives whose negation reads as clear criticism ("not good").
NEGATABLE_POSITIVE_ADJECTIVES = ("good", "great", "enjoyable", "fun", "interesting", "funny")

POSITIVE_VERBS = ("loved", "enjoyed", "liked", "adored")
NEGATIVE_VERBS = ("hated", "disliked", "detested")
# Present-tense forms for "I did not ___ this movie".
NEGATABLE_POSITIVE_VERBS = ("enjoy", "like", "love", "recommend")

INTENSIFIERS = ("really", "very", "extremely", "incredibly", "truly", "remarkably", "genuinely")

SHORT_PHRASE_TEMPLATES = (
    "The {noun} was {adj}.",
    "This {noun} is {adj}.",
    "What {a_adj} {noun}!",
    "{Adj} {noun}.",
    "I {verb} this {noun}.",
    "It is {a_adj} {noun}.",
)
# {adj} here is a positive adjective: the negated sentence is negative.
NEGATED_POSITIVE_TEMPLATES = (
    "The {noun} was not {adj}.",
    "This {noun} isn't {adj} at all.",
    "I don't think this {noun} is {adj}.",
    "The {noun} was never {adj}.",
    "I did not {verb} this {noun}.",
)
# {adj} here is a negative adjective: the negated sentence is positive.
NEGATED_NEGATIVE_TEMPLATES = (
    "The {noun} was not {adj} at all.",
    "This {noun} isn't {adj} at all.",
    "I would not call this {noun} {adj}.",
    "The {noun} was never {adj} for a moment.",
)
INTENSIFIER_TEMPLATES = (
    "The {noun} was {intensifier} {adj}.",
    "This is {a_intensifier} {adj} {noun}.",
    "I found the {noun} {intensifier} {adj}.",
)

NAMES = (
    "Maria", "James", "Aisha", "Kenji", "Olga", "Carlos", "Priya", "Tom", "Fatima", "Lukas",
    "Mei", "Samuel", "Ingrid", "Omar", "Chloe", "Diego",
)
CITIES = (
    "London", "Paris", "Lagos", "Mumbai", "Toronto", "Osaka", "Berlin", "Lima", "Cairo",
    "Sydney", "Oslo", "Seoul",
)

POSITIVE_REVIEWS = (
    "I watched this with {name} last night and we both loved it. The story is clever and the cast is wonderful.",
    "It's one of the best films I've seen this year. The ending is beautiful.",
    "{name} gives a warm, funny performance, and the script never wastes a scene.",
    "Filmed in {city}, this is a gorgeous movie with a great soundtrack. I'd happily watch it again.",
    "I didn't expect much, but it's a delight from start to finish.",
    "A moving, well acted story. {name} is excellent in the lead role.",
    "We saw it at a small cinema in {city} and the whole audience applauded at the end.",
    "The book is wonderful. I couldn't put it down and I have already recommended it to {name}.",
    "Great characters, sharp dialogue and a plot that keeps you guessing. Highly recommended.",
    "It isn't perfect, but it's charming, funny and full of heart.",
    "This is the kind of film you will want to see twice. {name} and I are still talking about it.",
    "The show is a joy. It is smart, kind and beautifully made, and I do not say that often.",
)
NEGATIVE_REVIEWS = (
    "I watched this with {name} and we both wanted to leave after twenty minutes. It's painfully slow.",
    "The plot makes no sense and the acting is wooden. What a waste of time.",
    "{name} is wasted in a dull role, and the jokes don't land.",
    "Set in {city}, but it doesn't capture the city at all. Boring and far too long.",
    "I'm sorry, but this is one of the worst films I've seen.",
    "The book starts well, but it's a mess by the halfway point. I wouldn't recommend it.",
    "We saw it in {city} and half the audience walked out. I can't blame them.",
    "Terrible dialogue, flat characters and an ending that is not worth the wait.",
    "It's loud, lazy and forgettable. {name} deserved a better script.",
    "I did not laugh once. The whole thing feels cheap and rushed.",
    "Do not bother with this one; it is a dull, predictable mess.",
    "The series was a huge disappointment, and {name} says the last season is even worse.",
)
# Statements of fact with no opinion: the base for the directional suites.
NEUTRAL_SENTENCES = (
    "I watched this movie last weekend with {name}.",
    "The film is about a family that moves to {city}.",
    "I read the book on a train to {city}.",
    "It runs for about two hours.",
    "The story takes place over one summer.",
    "I saw it on a Tuesday afternoon.",
    "The series has eight episodes.",
    "It is based on a novel from the nineties.",
    "{name} plays a teacher who moves to {city}.",
    "We bought tickets for the evening show.",
)

POSITIVE_CLAUSES = (
    "I loved it.",
    "Highly recommended.",
    "It was wonderful.",
    "Overall, it was excellent.",
    "I enjoyed every minute.",
    "It is a brilliant piece of work.",
    "Absolutely fantastic.",
)
NEGATIVE_CLAUSES = (
    "I hated it.",
    "What a waste of time.",
    "It was terrible.",
    "Overall, it was awful.",
    "I was bored the whole time.",
    "It is a dreadful piece of work.",
    "Absolutely horrible.",
)

# (contracted, expanded); matched as whole words, case-insensitively; a capital first letter is kept.
CONTRACTIONS = (
    ("isn't", "is not"),
    ("wasn't", "was not"),
    ("aren't", "are not"),
    ("don't", "do not"),
    ("doesn't", "does not"),
    ("didn't", "did not"),
    ("can't", "cannot"),
    ("couldn't", "could not"),
    ("won't", "will not"),
    ("wouldn't", "would not"),
    ("it's", "it is"),
    ("I'm", "I am"),
    ("I've", "I have"),
    ("I'd", "I would"),
    ("you'll", "you will"),
)
