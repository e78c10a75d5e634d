"""The hand-written naive Bayes (content/qa_classifier.py) is scikit-learn's TfidfVectorizer(sublinear_tf=True)
+ MultinomialNB: checked against scikit-learn itself on real handbook wordings and unseen questions."""

import numpy as np
import pytest

from content.qa_classifier import NaiveBayes, text_features, text_tokens

sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
sklearn_nb = pytest.importorskip("sklearn.naive_bayes")


@pytest.fixture(scope="module")
def corpus(real_engine):
    a = real_engine.analyzer
    texts, labels = [], []
    for i, e in enumerate(real_engine.entries[:40]):
        for t in (e.question, *e.paraphrases):
            c = a.clean(t)
            texts.append((c, a.words(c)))
            labels.append(i)
    return a, texts, labels


def test_log_posterior_equals_scikit_learn(corpus):
    a, texts, labels = corpus
    ours = NaiveBayes([text_features(c, w) for c, w in texts], labels, 40, alpha=0.1)
    vectorizer = sklearn_text.TfidfVectorizer(analyzer=lambda t: text_tokens(*t), sublinear_tf=True)
    model = sklearn_nb.MultinomialNB(alpha=0.1, fit_prior=False).fit(vectorizer.fit_transform(texts), labels)
    questions = ["我在外地打工回不来 能让我老婆替我投票吗", "居委会几年换一届", "罢免村主任要多少人签字",
                 "明天天气怎么样", "选委会", "", "zzz 完全没见过的字 龘"]
    for q in questions:
        c = a.clean(q)
        expected = model.predict_log_proba(vectorizer.transform([(c, a.words(c))]))[0]
        got = ours.log_posterior(text_features(c, a.words(c)))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6, err_msg=q)


def test_unknown_question_falls_back_to_the_prior():
    nb = NaiveBayes([text_features("委托投票", ["委托", "投票"]), text_features("选民登记", ["选民", "登记"]),
                     text_features("选民名单", ["选民", "名单"])], [0, 1, 1], 2)
    assert np.exp(nb.log_posterior({})) == pytest.approx([1 / 2, 1 / 2])
    assert np.argmax(nb.log_posterior(text_features("委托", ["委托"]))) == 0
