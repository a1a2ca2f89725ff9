"""Model mapping: which grammar (and reasoning grammar) a model name gets; ambiguity is a failure."""
import pytest

import toolgram
from toolgram.compiler import registry

# real model ids (the seed's table and formats.md) -> (tool-call grammar, reasoning grammar or None)
EXPECTED = {
    "Qwen/Qwen2.5-7B-Instruct": ("hermes", None),
    "Qwen/Qwen2.5-Coder-32B-Instruct": ("qwen25", None),
    "Qwen/QwQ-32B": ("hermes", "qwen3"),
    "Qwen/Qwen3-8B": ("hermes", "qwen3"),
    "Qwen/Qwen3-Coder-30B-A3B-Instruct": ("qwen3_coder", "qwen3"),
    "Qwen/Qwen3.5-397B-A17B": ("qwen3_coder", "qwen35"),
    "NousResearch/Hermes-2-Pro-Llama-3-8B": ("hermes", None),
    "NousResearch/Hermes-3-Llama-3.1-8B": ("hermes", None),
    "mistralai/Mistral-7B-Instruct-v0.3": ("mistral", None),
    "mistralai/Magistral-Small-2509": ("mistral", "mistral"),
    "meta-llama/Llama-3.1-8B-Instruct": ("llama3_json", None),
    "meta-llama/Llama-3.3-70B-Instruct": ("llama3_json", None),
    "meta-llama/Llama-3.2-11B-Vision-Instruct": ("llama3_json", None),
    "meta-llama/Llama-3.2-3B-Instruct": ("pythonic", None),
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": ("pythonic", None),
    "openai/gpt-oss-20b": ("harmony", "gpt_oss"),
    "openai/gpt-oss-120b": ("harmony", "gpt_oss"),
    "nvidia/Llama-3_3-Nemotron-Super-49B-v1_5": ("nemotron_deci", None),
    "nvidia/Llama-3_1-Nemotron-Ultra-253B-v1": ("nemotron_deci", None),
    "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": ("nemotron_nano", "nemotron3"),
    "microsoft/Phi-4-mini-instruct": ("phi4", None),
    "deepseek-ai/DeepSeek-V3": ("deepseek_v3", None),
    "deepseek-ai/DeepSeek-V3-0324": ("deepseek_v3", None),
    "deepseek-ai/DeepSeek-R1": ("deepseek_v3", "deepseek_r1"),
    "deepseek-ai/DeepSeek-R1-0528": ("deepseek_v3", "deepseek_r1"),
    "deepseek-ai/DeepSeek-V3.1": ("deepseek_v3_1", "deepseek_r1"),
    "deepseek-ai/DeepSeek-V3.1-Terminus": ("deepseek_v3_1", "deepseek_r1"),
    "deepseek-ai/DeepSeek-V3.2": ("deepseek_v3_2", "deepseek_r1"),
    "deepseek-ai/DeepSeek-V4": ("deepseek_v4", "deepseek_v4"),
    "ai21labs/AI21-Jamba-1.5-Mini": ("jamba", None),
    "zai-org/GLM-4.5": ("glm45", "glm45"),
    "zai-org/GLM-4.6": ("glm45", "glm45"),
    "zai-org/GLM-4.7": ("glm47", "glm45"),
    "zai-org/GLM-5": ("glm47", "glm45"),
    "moonshotai/Kimi-K2-Instruct": ("kimi_k2", None),
    "moonshotai/Kimi-K2.5": ("kimi_k2", "kimi_k25"),
    "moonshotai/Kimi-K2-Thinking": ("kimi_k2", "kimi_k2_thinking"),   # its template opens no <think>
    "MiniMaxAI/MiniMax-M2": ("minimax_m2", "minimax_m2"),
    "google/gemma-4-31b-it": ("gemma4", "gemma4"),
    "LiquidAI/LFM2-1.2B": ("lfm2", None),
    "ByteDance-Seed/Seed-OSS-36B-Instruct": ("seed_oss", "seed_oss"),
    "ai-sage/GigaChat3-10B-A1.8B": ("gigachat3", None),
    # issue 14: families from the real-template collection
    "ai-sage/GigaChat3.1-10B-A1.8B": ("gigachat3", None),
    "ibm-granite/granite-3.3-2b-instruct": ("granite", None),
    "ibm-granite/granite-3.2-8b-instruct": ("granite", "granite"),
    "ibm-granite/granite-4.0-h-small": ("hermes", None),
    "ServiceNow-AI/Apriel-1.6-15b-Thinker": ("apriel", "apriel"),
    "meetkai/functionary-medium-v3.1": ("functionary_v31", None),
    "meetkai/functionary-small-v3.2": ("functionary_v32", None),
    "fireworks-ai/llama-3-firefunction-v2": ("phi4", None),
    "CohereForAI/c4ai-command-r7b-12-2024": ("command_r7b", "command_r7b"),
    "CohereForAI/c4ai-command-r-plus": ("command_r_plus", None),
    "swiss-ai/Apertus-8B-Instruct-2509": ("apertus", "apertus"),
    "openbmb/MiniCPM5-1B": ("minicpm5", "think"),          # enable_thinking opens <think> in its prompt
    "inclusionAI/Ling-3.0-flash": ("ling3", "ling3"),
    "upstage/Solar-Open-100B": ("solar_open", "solar_open"),
    "tencent/Hy3-preview": ("hy3", "hy3"),
    "moonshotai/Kimi-K3": ("kimi_k3", "kimi_k3"),
    "MiniMaxAI/MiniMax-M1-80k": ("minimax_m1", None),
    "stepfun-ai/Step-3.5-Flash": ("qwen3_coder", "qwen35"),
    "poolside/Laguna-XS.2": ("glm45", "glm45"),            # enable_thinking opens <think> in its prompt
    "XiaomiMiMo/MiMo-VL-7B-RL": ("hermes", "think"),
    "speakleash/Bielik-11B-v3.0-Instruct": ("hermes", "think"),
    "deepseek-ai/DeepSeek-V4-Flash-0731": ("deepseek_v4", "deepseek_v4"),
    "nvidia/NVIDIA-Nemotron-Nano-9B-v2": ("nemotron_deci", "nemotron3"),
    "mistralai/Ministral-3-14B-Reasoning-2512": ("mistral", "mistral"),
    "tencent/Hunyuan-A13B-Instruct": ("hunyuan_a13b", "hunyuan_a13b"),
    "XHToken/Spark-X2.5-1.7B": ("glm47", "qwen35"),          # enable_thinking opens <think> in its prompt
}


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_model_gets_its_grammars(model):
    tool, reasoning = EXPECTED[model]
    assert toolgram.for_model(model) == tool
    assert toolgram.reasoning_for_model(model) == reasoning
    assert toolgram.for_model(model.lower()) == tool           # hub ids are case-insensitive
    assert toolgram.for_model("/models/" + model.split("/")[1]) == tool    # a local directory of that name


def test_unknown_model_gets_none():
    assert toolgram.for_model("acme/never-heard-of-it-7B") is None


@pytest.mark.parametrize("table", ["tools", "reasoning"])
def test_no_glob_ties(table):
    """Every glob, instantiated, is won by one grammar alone: its own when filled plainly, maybe another's
    more specific glob when filled otherwise (``Qwen/Qwen2.5-*`` filled with ``Coder-7B`` is qwen25's)."""
    entries = registry.model_table() if table == "tools" else registry.reasoning_table()
    problems = []
    for name, globs in entries:
        for glob in globs:
            plain = glob.replace("*", "x").replace("?", "x")
            if registry.ambiguities(plain, entries) != [name]:
                problems.append(f"{glob} -> {plain}: {registry.ambiguities(plain, entries)}")
            for fill in ("7B-Instruct", "Coder-7B", ""):
                model = glob.replace("*", fill).replace("?", "x")
                if len(registry.ambiguities(model, entries)) > 1:
                    problems.append(f"{glob} -> {model}: tie {registry.ambiguities(model, entries)}")
    for model in EXPECTED:
        if len(registry.ambiguities(model, entries)) > 1:
            problems.append(f"{model}: tie {registry.ambiguities(model, entries)}")
    assert not problems, problems
