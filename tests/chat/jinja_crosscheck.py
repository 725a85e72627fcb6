# SPDX-License-Identifier: MIT
"""apr's chat-template rendering against Jinja2's rendering of the real templates.

For each template in tests/chat/templates/ (as the models' tokenizer_config.json / GGUF
tokenizer.chat_template hold them: Gemma 2 and 3, Phi-3.5, Mistral Nemo) and the Phi-3 variants
written out below, and for a set of conversations, Jinja2 renders the prompt as Hugging Face's
apply_chat_template does (trim_blocks, lstrip_blocks, raise_exception) and
tests/chat/chat_render_cli renders it with the family apr recognises. Both must give the same
text, or both refuse the conversation (Gemma's roles must alternate; Gemma 2 has no system role).

Where a template silently drops a system message (the first Phi-3 templates have no system turn),
apr refuses it instead of losing it: checked as such.

Exit status 0 when all agree, 1 otherwise, 77 (skipped) when jinja2 is missing.
"""

import argparse
import subprocess
import sys
from pathlib import Path

try:
    import jinja2
    import jinja2.sandbox
except ImportError as e:  # CTest reports exit status 77 as skipped, with this reason
    print(f"SKIPPED: {e} (install tools/requirements.txt)")
    sys.exit(77)

TEMPLATES = Path(__file__).resolve().parent / "templates"

PHI35 = (TEMPLATES / "microsoft-Phi-3.5-mini-instruct.jinja").read_text()

# name: (template text, family apr must recognise, bos, eos)
CASES = {
    "gemma-2-2b-it": ((TEMPLATES / "google-gemma-2-2b-it.jinja").read_text(), "gemma", "<bos>",
                      "<eos>"),
    "phi-3.5-mini-instruct": (PHI35, "phi3", "<s>", "<|endoftext|>"),
    # Phi-3-mini-4k-instruct (June 2024): Phi-3.5's without the empty-system test.
    "phi-3-mini-4k-instruct": (PHI35.replace(" and message['content']", ""), "phi3", "<s>",
                               "<|endoftext|>"),
    # The first Phi-3 templates (llama.cpp's tests/test-chat-template.cpp has them).
    "phi-3-mini-original": (
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}"
        "{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}"
        "{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}"
        "{% endif %}{% endfor %}", "phi3", "<s>", "<|endoftext|>"),
    "phi-3-small": (
        "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + "
        "message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}", "phi3", "<|endoftext|>",
        "<|endoftext|>"),
    # Mistral Nemo (tekken vocabulary): apr's mistral-v3-tekken.
    "mistral-nemo-instruct-2407": (
        (TEMPLATES / "mistralai-Mistral-Nemo-Instruct-2407.jinja").read_text(),
        "mistral-v3-tekken", "<s>", "</s>"),
}

CONVERSATIONS = [
    ([("user", "What is the capital of France?")], True),
    ([("system", "You answer in one word."), ("user", "Capital of France?")], True),
    ([("user", "Hi"), ("assistant", "Hello!"), ("user", "Capital of France?")], True),
    ([("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"),
      ("user", "Capital of France?")], True),
    ([("user", "  padded \n")], True),
    ([("system", "  S  "), ("user", "\tHi\u3000\u00a0"), ("assistant", " A\u2028")], True),
    ([("system", ""), ("user", "Hi")], True),
    ([("user", "a"), ("user", "b")], True),
    ([("user", "Hi"), ("assistant", "Hello!")], False),
    ([("system", "S"), ("user", "Hi"), ("assistant", "Hello!")], False),
    ([("user", "<start_of_turn> and <|end|> written by the user")], True),
]


class Refused(Exception):
    pass


def jinja_render(template: str, messages: list, add: bool, bos: str, eos: str) -> str:
    def raise_exception(message):
        raise Refused(message)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=[{"role": r, "content": c} for r, c in messages], add_generation_prompt=add,
        bos_token=bos, eos_token=eos)


def apr_render(cli: str, template_path: Path, messages: list, add: bool, bos: str, eos: str):
    cmd = [cli, "--template", str(template_path), "--bos", bos, "--eos", eos]
    if not add:
        cmd.append("--no-generation-prompt")
    stdin = "".join(f"{r}\t{c.encode('utf-8').hex()}\n" for r, c in messages)
    out = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60)
    if out.returncode == 2:
        return None, None, out.stderr.strip()
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: status {out.returncode}: {out.stderr}")
    family, text = out.stdout.rstrip("\n").split("\t")
    return family, bytes.fromhex(text).decode("utf-8"), ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", required=True, help="tests/chat/chat_render_cli")
    p.add_argument("--work-dir", required=True)
    args = p.parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    checked = failures = 0
    for name, (template, family, bos, eos) in CASES.items():
        path = work / f"{name}.jinja"
        path.write_text(template)
        for messages, add in CONVERSATIONS:
            try:
                expected, refused = jinja_render(template, messages, add, bos, eos), ""
            except Refused as e:
                expected, refused = None, str(e)
            got_family, got, error = apr_render(args.cli, path, messages, add, bos, eos)
            has_system = any(r == "system" for r, _ in messages)
            drops_system = has_system and "<|system|>" not in template and "'<|' + message" \
                not in template and family == "phi3"
            ok = False
            if got_family is not None and got_family != family:
                problem = f"recognised as {got_family}, not {family}"
            elif refused:
                ok = got is None
                problem = f"Jinja refuses ({refused}) but apr renders {got!r}"
            elif drops_system:
                ok = got is None and "no system role" in error
                problem = f"the template drops the system message; apr: {got!r} {error}"
            else:
                ok = got == expected
                problem = f"\n    jinja {expected!r}\n    apr   {got!r} {error}"
            checked += 1
            if not ok:
                failures += 1
                print(f"FAIL {name} {messages} add_generation_prompt={add}: {problem}")
    print(f"{checked - failures} of {checked} renderings agree with Jinja2")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
