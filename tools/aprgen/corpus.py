# SPDX-License-Identifier: MIT
"""The text the test tokenizers learn their merges from.

It mixes English prose, C++ and Python code, numbers, CJK and emoji so that the learned vocabulary
exercises letters, digits, punctuation, whitespace runs and multi-byte UTF-8 alike.
"""

SAMPLE_TEXT = """\
The quick brown fox jumps over the lazy dog. The dog sleeps in the sun, and the fox runs away.
It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of
foolishness. We can't say what they'll do, but I'm sure she's right and you've seen it.
A language model reads a sequence of tokens and predicts the next token. The model has layers;
each layer has attention and a feed forward network. Attention lets every position look at the
positions before it. The feed forward network transforms each position on its own.
Inference engines load the weights from a file, quantize them, and run the forward pass on a
backend: the CPU, a GPU through CUDA, or a GPU through Vulkan. Tests compare the logits of the
engine with a reference computed in double precision.
Once upon a time there was a little robot who wanted to learn how to read. Every morning the
robot opened a book, looked at the letters, and tried to say the words out loud. Some words were
easy, like "cat" and "sun", and some words were hard, like "thermodynamics" and "onomatopoeia".
The weather today is sunny with a high of 23 degrees and a low of 14 degrees. Tomorrow there is a
chance of rain in the afternoon. On Monday, 3 March 2025, the temperature reached 31.5 degrees.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 42 100 256 512 1024 2048 4096 65536 3.14159 2.71828 1e-6
Phone 555-0199, order #12345, total $1,234.56, version 1.2.3, year 1999, 2000, 2024.

int main(int argc, char** argv) {
    std::vector<float> values(argc, 0.0f);
    for (int i = 0; i < argc; ++i) {
        values[i] = static_cast<float>(std::strlen(argv[i]));
    }
    if (values.empty()) return 1;
    std::printf("%d values\\n", static_cast<int>(values.size()));
    return 0;
}

def softmax(logits):
    m = max(logits)
    exps = [math.exp(x - m) for x in logits]
    total = sum(exps)
    return [e / total for e in exps]

class Tokenizer:
    def __init__(self, vocab, merges):
        self.vocab = vocab
        self.merges = {pair: rank for rank, pair in enumerate(merges)}

    def encode(self, text: str) -> list[int]:
        return [self.vocab[piece] for piece in self.split(text)]

for (size_t row = 0; row < rows; ++row) { out[row] = dot(weights + row * cols, input, cols); }
while (true) { if (done) break; else continue; }  // TODO: handle errors
{"name": "apr", "version": "0.1.0", "layers": 24, "heads": 14, "tied": true}

今天天气很好，我们一起去公园散步吧。机器学习模型需要大量的数据和计算。
東京は日本の首都です。ひらがなとカタカナと漢字を使います。
한국어도 조금 있습니다. 안녕하세요!
Emoji: 🙂 😀 🚀 ❤️ 👍 🎉 — and some accents: café, naïve, résumé, über, façade, São Paulo.
Tabs\tand\ttabs, double  spaces,   triple   spaces, and
multiple

blank lines.
The end. THE END! the end? The End...
"""
